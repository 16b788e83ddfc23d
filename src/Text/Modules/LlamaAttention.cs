using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>
/// Grouped-query self-attention with rotary embeddings (no biases). K/V heads are never repeated: the
/// <c>n_rep</c> query heads that share a K/V head are folded into the query length so one
/// <c>scaled_dot_product_attention</c> call serves them all.
/// </summary>
public sealed class LlamaAttention : nn.Module
{
    readonly int _heads, _kvHeads, _headDim;
    // q/k/v weights are row ranges of one [(H + 2·KV)·hd, D] tensor, so inference runs one fused projection; training
    // (grad enabled) uses the three parameters, which alias the same memory.
    readonly Tensor _qkv;
    // q8 storage: scales of the fused q/k/v rows and of o_proj (null when the weights are not quantized).
    readonly Tensor? _qkvScale, _oScale;
#pragma warning disable IDE1006 // checkpoint key names
    /// <summary>Query projection [heads·head_dim, dim].</summary>
    public readonly Linear q_proj;
    /// <summary>Key projection [kv_heads·head_dim, dim].</summary>
    public readonly Linear k_proj;
    /// <summary>Value projection [kv_heads·head_dim, dim].</summary>
    public readonly Linear v_proj;
    /// <summary>Output projection [dim, heads·head_dim].</summary>
    public readonly Linear o_proj;
#pragma warning restore IDE1006

    /// <summary>
    /// Creates the attention (weights uninitialised). Under <see cref="QuantizationSettings.Current"/> the projections are
    /// q8: int8 weights with a <c>weight_scale</c> buffer each.
    /// </summary>
    public LlamaAttention(LlamaConfig c, Device? device, ScalarType dtype) : base("LlamaAttention")
    {
        _heads = c.NumHeads; _kvHeads = c.NumKvHeads; _headDim = c.HeadDim;
        long q = c.NumHeads * c.HeadDim, kv = c.NumKvHeads * c.HeadDim;
        Tensor? qkvScale = null, oScale = null;
        if (QuantizationSettings.Current is { Method: WeightQuantization.Q8 })
        {
            Tensor s;
            (_qkv, s) = QuantizedLayers.Empty(q + 2 * kv, c.HiddenSize, device);
            qkvScale = s;
            q_proj = QuantizedLayers.Linear(_qkv.narrow(0, 0, q), s.narrow(0, 0, q));
            k_proj = QuantizedLayers.Linear(_qkv.narrow(0, q, kv), s.narrow(0, q, kv));
            v_proj = QuantizedLayers.Linear(_qkv.narrow(0, q + kv, kv), s.narrow(0, q + kv, kv));
            (o_proj, oScale) = QuantizedLayers.Linear(q, c.HiddenSize, device);
        }
        else
        {
            _qkv = torch.empty(new[] { q + 2 * kv, c.HiddenSize }, dtype: dtype, device: device).DetachFromDisposeScope();
            q_proj = nn.Linear(new Parameter(_qkv.narrow(0, 0, q)));
            k_proj = nn.Linear(new Parameter(_qkv.narrow(0, q, kv)));
            v_proj = nn.Linear(new Parameter(_qkv.narrow(0, q + kv, kv)));
            o_proj = Layers.Linear(c.NumHeads * c.HeadDim, c.HiddenSize, false, device, dtype);
        }
        RegisterComponents();
        // Set after registration: the scales are the projections' weight_scale buffers, not buffers of this module.
        _qkvScale = qkvScale; _oScale = oScale;
    }

    /// <summary>x [B, T, D] → [B, T, D].</summary>
    public Tensor Forward(Tensor x, DecoderContext ctx, int layer)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], t = x.shape[1];
        Tensor q, k, v;
        if (_qkvScale is not null || Fused.Usable(_qkv, q_proj.weight))
        {
            var qkv = WeightKernels.Linear(x, _qkv, _qkvScale);                     // [B, T, (H+2KV)·hd]
            long nq = _heads * _headDim, nkv = _kvHeads * _headDim;
            q = qkv.narrow(-1, 0, nq).view(b, t, _heads, _headDim).transpose(1, 2);
            k = qkv.narrow(-1, nq, nkv).view(b, t, _kvHeads, _headDim).transpose(1, 2);
            v = qkv.narrow(-1, nq + nkv, nkv).view(b, t, _kvHeads, _headDim).transpose(1, 2);
        }
        else
        {
            q = q_proj.forward(x).view(b, t, _heads, _headDim).transpose(1, 2);       // [B, H, T, hd]
            k = k_proj.forward(x).view(b, t, _kvHeads, _headDim).transpose(1, 2);     // [B, KV, T, hd]
            v = v_proj.forward(x).view(b, t, _kvHeads, _headDim).transpose(1, 2);
        }
        q = RotaryEmbedding.Apply(q, ctx.Cos, ctx.Sin);
        k = RotaryEmbedding.Apply(k, ctx.Cos, ctx.Sin);
        if (ctx.Cache is not null) (k, v) = ctx.Cache.Append(layer, k, v);
        var o = Attend(q, k, v, ctx.Mask, _kvHeads);                                 // [B, H, T, hd]
        var y = QuantizedLayers.Forward(o_proj, o.transpose(1, 2).reshape(b, t, _heads * _headDim), _oScale);
        return y.MoveToOuterDisposeScope();
    }

    // For the single-row decode step (SingleRowDecoder): the fused q/k/v weight, its q8 scales and o_proj's.
    internal int Heads => _heads;
    internal int KvHeads => _kvHeads;
    internal int HeadDim => _headDim;
    internal Tensor FusedQkv => _qkv;
    internal Tensor? FusedQkvScale => _qkvScale;
    internal Tensor? OutScale => _oScale;
    internal bool FusedUsable => _qkvScale is not null || Fused.Usable(_qkv, q_proj.weight);

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) { _qkv.Dispose(); _qkvScale?.Dispose(); }
        base.Dispose(disposing);
    }

    /// <summary>
    /// GQA without repeating K/V: q [B, H, T, hd], k/v [B, KV, S, hd], mask [B|1, 1, n_rep·T, S] (bool, true = attend)
    /// or null. Returns [B, H, T, hd].
    /// </summary>
    public static Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor? mask, int kvHeads)
    {
        long b = q.shape[0], h = q.shape[1], t = q.shape[2], hd = q.shape[3];
        long rep = h / kvHeads;
        var qf = q.reshape(b, kvHeads, rep * t, hd);                                // heads kv·rep+r share kv head
        var o = nn.functional.scaled_dot_product_attention(qf, k, v, mask);
        return o.view(b, h, t, hd);
    }
}

using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision;

/// <summary>
/// Gated cross-attention block of the decoder (HF <c>MllamaCrossAttentionDecoderLayer</c>):
/// <c>h = x + tanh(attn_gate)·(r·CrossAttn(RMSNorm(x), image))</c>, <c>out = h + tanh(mlp_gate)·(r·MLP(RMSNorm(h)))</c>,
/// where r = 1 for rows that see an image and 0 before the first one (the HF-compatible mode leaves the attention term
/// unmasked, as transformers does). Image K/V are computed once at prefill and kept in this block's KV-cache slot. With
/// no image in the batch the block is skipped (the text-only path of both references).
/// </summary>
public sealed class CrossAttentionDecoderLayer : DecoderBlock
{
#pragma warning disable IDE1006
    /// <summary>Cross-attention.</summary>
    public readonly CrossAttention cross_attn;
    /// <summary>Norm before attention.</summary>
    public readonly RmsNorm input_layernorm;
    /// <summary>Attention gate [1] (0 at init: the block is then a no-op).</summary>
    public readonly Parameter cross_attn_attn_gate;
    /// <summary>Feed-forward.</summary>
    public readonly LlamaMlp mlp;
    /// <summary>Norm before the MLP.</summary>
    public readonly RmsNorm post_attention_layernorm;
    /// <summary>MLP gate [1].</summary>
    public readonly Parameter cross_attn_mlp_gate;
#pragma warning restore IDE1006

    /// <summary>Creates the block for the text config (weights uninitialised).</summary>
    public CrossAttentionDecoderLayer(LlamaConfig c, Device? device, ScalarType dtype) : base("CrossAttentionDecoderLayer")
    {
        cross_attn = new CrossAttention(c, device, dtype);
        input_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, device, dtype);
        cross_attn_attn_gate = Layers.Param(new long[] { 1 }, device, dtype);
        mlp = new LlamaMlp(c.HiddenSize, c.IntermediateSize, device, dtype);
        post_attention_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, device, dtype);
        cross_attn_mlp_gate = Layers.Param(new long[] { 1 }, device, dtype);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor x, DecoderContext ctx)
    {
        if (ctx.Media is null || !ctx.Media.TryGetValue(CrossAttentionInputs.MediaKey, out var o) || o is not CrossAttentionInputs media)
            return x.alias();
        using var scope = NewDisposeScope();
        var dev = x.device;   // a model split over several devices runs this block where its weights are
        Tensor k, v;
        if (media.VisionStates is not null)
        {
            (k, v) = cross_attn.KeyValues(media.VisionStates.to(x.dtype, dev));
            ctx.Cache?.SetStatic(LayerIndex, k, v);
        }
        else
        {
            var (ck, cv) = ctx.Cache?.GetStatic(LayerIndex) ?? (null, null);
            if (ck is null || cv is null) return x.alias();
            k = ck; v = cv;
        }
        var r = media.RowMask.to(x.dtype, dev);                                                   // [B, T, 1]
        var a = cross_attn.Forward(input_layernorm.forward(x), k, v, media.Mask.to(dev));
        if (!media.HfCompatible) a = a * r;
        var h = x + cross_attn_attn_gate.tanh() * a;
        var f = mlp.forward(post_attention_layernorm.forward(h)) * r;
        return (h + cross_attn_mlp_gate.tanh() * f).MoveToOuterDisposeScope();
    }
}

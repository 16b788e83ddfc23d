using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision;

/// <summary>
/// The gated cross-attention block shared by image and video adapters (HF <c>MllamaCrossAttentionDecoderLayer</c> key
/// names): <c>h = x + tanh(attn_gate)·(r·CrossAttn(RMSNorm(x), media))</c>, <c>out = h + tanh(mlp_gate)·(r·MLP(RMSNorm(h)))</c>
/// with r the per-row mask of rows that see media. Media K/V are computed once at prefill and kept in the block's
/// KV-cache slot. Subclasses decide which media they read.
/// </summary>
public abstract class GatedCrossAttentionBlock : DecoderBlock
{
#pragma warning disable IDE1006
    /// <summary>Grouped-query cross-attention with per-head q/k RMSNorm, no rotary.</summary>
    public readonly CrossAttention cross_attn;
    /// <summary>Norm before attention.</summary>
    public readonly RmsNorm input_layernorm;
    /// <summary>Attention gate [1] (0 at init: the block is then a no-op).</summary>
    public readonly Parameter cross_attn_attn_gate;
    /// <summary>Feed-forward (SwiGLU).</summary>
    public readonly LlamaMlp mlp;
    /// <summary>Norm before the MLP.</summary>
    public readonly RmsNorm post_attention_layernorm;
    /// <summary>MLP gate [1].</summary>
    public readonly Parameter cross_attn_mlp_gate;
#pragma warning restore IDE1006

    /// <summary>Creates the block for the text config (weights uninitialised).</summary>
    protected GatedCrossAttentionBlock(string name, LlamaConfig c, Device? device, ScalarType dtype) : base(name)
    {
        cross_attn = new CrossAttention(c, device, dtype);
        input_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, device, dtype);
        cross_attn_attn_gate = Layers.Param(new long[] { 1 }, device, dtype);
        mlp = new LlamaMlp(c.HiddenSize, c.IntermediateSize, device, dtype);
        post_attention_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, device, dtype);
        cross_attn_mlp_gate = Layers.Param(new long[] { 1 }, device, dtype);
        RegisterComponents();
    }

    /// <summary>
    /// K/V of <paramref name="states"/> (prefill: computed and cached) or the cached ones (decode); null when neither
    /// exists (then the block is the identity).
    /// </summary>
    protected (Tensor K, Tensor V)? MediaKeyValues(Tensor? states, Tensor x, DecoderContext ctx)
    {
        if (states is not null)
        {
            var (k, v) = cross_attn.KeyValues(states.to(x.dtype, x.device));
            ctx.Cache?.SetStatic(LayerIndex, k, v);
            return (k, v);
        }
        var (ck, cv) = ctx.Cache?.GetStatic(LayerIndex) ?? (null, null);
        return ck is null || cv is null ? null : (ck, cv);
    }

    /// <summary>The gated residual update given K/V, the attention mask, the row mask [B, T, 1] and whether the attention term is row-masked too.</summary>
    protected Tensor Gated(Tensor x, Tensor k, Tensor v, Tensor? mask, Tensor rowMask, bool maskAttention)
    {
        var r = rowMask.to(x.dtype, x.device);                                                     // [B, T, 1]
        var a = cross_attn.Forward(input_layernorm.forward(x), k, v, mask?.to(x.device)!);
        if (maskAttention) a = a * r;
        var h = Scalars.Add(x, cross_attn_attn_gate.tanh() * a);
        var f = mlp.forward(post_attention_layernorm.forward(h)) * r;
        return Scalars.Add(h, cross_attn_mlp_gate.tanh() * f);
    }
}

using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision;

/// <summary>
/// Gated cross-attention block of the decoder (HF <c>MllamaCrossAttentionDecoderLayer</c>):
/// <c>h = x + tanh(attn_gate)·(r·CrossAttn(RMSNorm(x), image))</c>, <c>out = h + tanh(mlp_gate)·(r·MLP(RMSNorm(h)))</c>,
/// where r = 1 for rows that see an image and 0 before the first one (the HF-compatible mode leaves the attention term
/// unmasked, as transformers does). Image K/V are computed once at prefill and kept in this block's KV-cache slot. With
/// no image in the batch the block is skipped (the text-only path of both references).
/// </summary>
public sealed class CrossAttentionDecoderLayer : GatedCrossAttentionBlock
{
    /// <summary>Creates the block for the text config (weights uninitialised).</summary>
    public CrossAttentionDecoderLayer(LlamaConfig c, Device? device, ScalarType dtype) : base("CrossAttentionDecoderLayer", c, device, dtype) { }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor x, DecoderContext ctx)
    {
        if (ctx.Media is null || !ctx.Media.TryGetValue(CrossAttentionInputs.MediaKey, out var o) || o is not CrossAttentionInputs media)
            return x.alias();
        using var scope = NewDisposeScope();
        var kv = MediaKeyValues(media.VisionStates, x, ctx);
        if (kv is null) return x.alias();
        var (k, v) = kv.Value;
        // HF-compatible mode leaves the attention term unmasked, as transformers does.
        return Gated(x, k, v, media.Mask, media.RowMask, !media.HfCompatible).MoveToOuterDisposeScope();
    }
}

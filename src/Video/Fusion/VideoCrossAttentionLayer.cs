using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Video;

/// <summary>
/// A video cross-attention layer (checkpoint prefix <c>video_model.cross_attention_layers.{j}.</c>), shaped like the
/// image cross-attention block of Llama 3.2 Vision (tanh-gated and zero-initialised like the image ones, as in Flamingo):
/// <c>h = x + tanh(attn_gate)·(r·CrossAttn(RMSNorm(x), video))</c>, <c>out = h + tanh(mlp_gate)·(r·MLP(RMSNorm(h)))</c>
/// with r = 1 on rows from the <c>&lt;|video|&gt;</c> token on and 0 before it (Meta's rule for rows without media:
/// the layer is the identity there). Every row that sees the video sees all its aggregated tokens. Video K/V are
/// computed once at prefill and kept in this layer's KV-cache slot; with no video in the request the layer is skipped.
/// </summary>
public sealed class VideoCrossAttentionLayer : GatedCrossAttentionBlock
{
    /// <summary>Creates the layer for the text config (weights uninitialised).</summary>
    public VideoCrossAttentionLayer(LlamaConfig c, Device? device, ScalarType dtype) : base("VideoCrossAttentionLayer", c, device, dtype) { }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor x, DecoderContext ctx)
    {
        if (ctx.Media is null || !ctx.Media.TryGetValue(VideoCrossAttentionInputs.MediaKey, out var o) || o is not VideoCrossAttentionInputs media)
            return x.alias();
        using var scope = NewDisposeScope();
        var kv = MediaKeyValues(media.VideoStates, x, ctx);
        if (kv is null) return x.alias();
        var (k, v) = kv.Value;
        // No attention mask: every row that sees the video sees all its aggregated tokens.
        return Gated(x, k, v, null, media.RowMask, true).MoveToOuterDisposeScope();
    }
}

using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Video;

/// <summary>
/// A video cross-attention layer (checkpoint prefix <c>video_model.cross_attention_layers.{j}.</c>), shaped like the
/// image cross-attention block of Llama 3.2 Vision (SPEC: "tanh-gated and zero-initialised like the image ones"):
/// <c>h = x + tanh(attn_gate)·(r·CrossAttn(RMSNorm(x), video))</c>, <c>out = h + tanh(mlp_gate)·(r·MLP(RMSNorm(h)))</c>
/// with r = 1 on rows from the <c>&lt;|video|&gt;</c> token on and 0 before it (Meta's rule for rows without media:
/// the layer is the identity there). Every row that sees the video sees all its aggregated tokens. Video K/V are
/// computed once at prefill and kept in this layer's KV-cache slot; with no video in the request the layer is skipped.
/// </summary>
public sealed class VideoCrossAttentionLayer : DecoderBlock
{
#pragma warning disable IDE1006
    /// <summary>Grouped-query cross-attention with per-head q/k RMSNorm, no rotary.</summary>
    public readonly CrossAttention cross_attn;
    /// <summary>Norm before attention.</summary>
    public readonly RmsNorm input_layernorm;
    /// <summary>Attention gate [1], 0 at init.</summary>
    public readonly Parameter cross_attn_attn_gate;
    /// <summary>Feed-forward (SwiGLU).</summary>
    public readonly LlamaMlp mlp;
    /// <summary>Norm before the MLP.</summary>
    public readonly RmsNorm post_attention_layernorm;
    /// <summary>MLP gate [1], 0 at init.</summary>
    public readonly Parameter cross_attn_mlp_gate;
#pragma warning restore IDE1006

    /// <summary>Creates the layer for the text config (weights uninitialised).</summary>
    public VideoCrossAttentionLayer(LlamaConfig c, Device? device, ScalarType dtype) : base("VideoCrossAttentionLayer")
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
        if (ctx.Media is null || !ctx.Media.TryGetValue(VideoCrossAttentionInputs.MediaKey, out var o) || o is not VideoCrossAttentionInputs media)
            return x.alias();
        using var scope = NewDisposeScope();
        Tensor k, v;
        if (media.VideoStates is not null)
        {
            (k, v) = cross_attn.KeyValues(media.VideoStates.to_type(x.dtype));
            ctx.Cache?.SetStatic(LayerIndex, k, v);
        }
        else
        {
            var (ck, cv) = ctx.Cache?.GetStatic(LayerIndex) ?? (null, null);
            if (ck is null || cv is null) return x.alias();
            k = ck; v = cv;
        }
        var r = media.RowMask.to_type(x.dtype);                                                   // [B, T, 1]
        var a = cross_attn.Forward(input_layernorm.forward(x), k, v, null!) * r;                 // no mask: all video tokens visible
        var h = x + cross_attn_attn_gate.tanh() * a;
        var f = mlp.forward(post_attention_layernorm.forward(h)) * r;
        return (h + cross_attn_mlp_gate.tanh() * f).MoveToOuterDisposeScope();
    }
}

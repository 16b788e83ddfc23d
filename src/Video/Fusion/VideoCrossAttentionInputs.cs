using static TorchSharp.torch;

namespace Llama3.Multimodal.Video;

/// <summary>
/// What the video cross-attention layers read for one forward call (in <c>ForwardOptions.Media</c> under
/// <see cref="MediaKey"/>): the aggregated video states at prefill (null later: the layers reuse the K/V cached in their
/// KV-cache slot) and which query rows see the video.
/// </summary>
public sealed class VideoCrossAttentionInputs
{
    /// <summary>Key of these inputs in the media dictionary.</summary>
    public const string MediaKey = "video";

    /// <summary>Aggregated video states [B, groups · latents, D], or null to use the cached K/V.</summary>
    public Tensor? VideoStates { get; init; }
    /// <summary>[B, T, 1] in the weight dtype: 1 for rows at or after the row's <c>&lt;|video|&gt;</c> token, else 0.</summary>
    public required Tensor RowMask { get; init; }
}

using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision;

/// <summary>
/// What the cross-attention blocks read for one forward call (placed in <c>ForwardOptions.Media</c> under
/// <see cref="MediaKey"/>): the projected image states (prefill) or nothing (decode: the blocks reuse the K/V cached in
/// their KV-cache slot), the attention mask and the row mask.
/// </summary>
public sealed class CrossAttentionInputs
{
    /// <summary>Key of these inputs in the media dictionary.</summary>
    public const string MediaKey = "image";

    /// <summary>Projected image states [B, S, D] (S = images · tiles · tokens per tile), or null to use cached K/V.</summary>
    public Tensor? VisionStates { get; init; }
    /// <summary>
    /// [B, 1, n_rep·T, S] bool (true = attend), in the grouped-query folded layout of <c>LlamaAttention.Attend</c>. Rows
    /// that see no image attend everywhere (the references' zeroed bias row) so the softmax stays defined.
    /// </summary>
    public required Tensor Mask { get; init; }
    /// <summary>[B, T, 1] in the weight dtype: 1 for rows that see an image, 0 for rows before the first one.</summary>
    public required Tensor RowMask { get; init; }
    /// <summary>Hugging Face behaviour for rows without an image (attention output kept, only the MLP zeroed); false = Meta (both zeroed).</summary>
    public bool HfCompatible { get; init; }
}

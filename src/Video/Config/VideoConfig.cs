using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Video;

/// <summary>
/// The video adapter added to an image-text model (Llama 3 paper §7.2): how many frames to sample, the temporal
/// aggregator, where the video cross-attention layers go, and the <c>&lt;|video|&gt;</c> placeholder id.
/// </summary>
public sealed record VideoConfig
{
    /// <summary>
    /// Default id of <c>&lt;|video|&gt;</c>: 128257, the second of the 8 extra embedding rows Llama 3.2 Vision adds after
    /// the vocabulary (<c>&lt;|image|&gt;</c> is 128256, the first). Meta never published a video token; this row is unused
    /// by the released image model, so the text vocabulary and the tokenizer stay untouched.
    /// </summary>
    public const int DefaultVideoTokenId = 128257;

    /// <summary>The temporal aggregator.</summary>
    public required TemporalAggregatorConfig Aggregator { get; init; }
    /// <summary>Frames sampled per clip (64; 16 in video pretraining).</summary>
    public int NumFrames { get; init; } = 64;
    /// <summary>
    /// Decoder layers (indices of the image-text model's stack, as in its <c>text_config.cross_attention_layers</c>)
    /// that get a video cross-attention layer right before them, ascending; null = before every 4th image
    /// cross-attention layer (the 4th, 8th, …: Llama 3 paper §7.2, 2 video layers for 8 image layers, 5 for 20).
    /// </summary>
    public IReadOnlyList<int>? CrossAttentionLayers { get; init; }
    /// <summary>Token id of the <c>&lt;|video|&gt;</c> placeholder (<see cref="DefaultVideoTokenId"/>).</summary>
    public int VideoTokenId { get; init; } = DefaultVideoTokenId;

    /// <summary>
    /// The decoder layers that get a video cross-attention layer in a base model whose image cross-attention layers are
    /// <paramref name="imageCrossAttentionLayers"/>: <see cref="CrossAttentionLayers"/>, or before every 4th image layer.
    /// </summary>
    public IReadOnlyList<int> LayersFor(IReadOnlyList<int> imageCrossAttentionLayers)
    {
        if (CrossAttentionLayers is { } given) return given;
        var image = imageCrossAttentionLayers.OrderBy(i => i).ToArray();
        return Enumerable.Range(1, image.Length / 4).Select(k => image[4 * k - 1]).ToArray();
    }

    /// <summary>
    /// Checks the values against a base model of <paramref name="numLayers"/> decoder layers whose image
    /// cross-attention layers are <paramref name="imageCrossAttentionLayers"/>.
    /// </summary>
    public VideoConfig Validate(int numLayers, IReadOnlyList<int> imageCrossAttentionLayers, string source = "video config")
    {
        Aggregator.Validate(source + " aggregator");
        if (NumFrames < 1 || NumFrames > 4096) throw new ConfigException($"{source}: num_frames = {NumFrames} is out of range (1..4096).");
        if (Aggregator.MaxGroups > 0 && Aggregator.GroupsFor(NumFrames) > Aggregator.MaxGroups)
            throw new ConfigException($"{source}: num_frames = {NumFrames} in groups of {Aggregator.FramesPerGroup} make {Aggregator.GroupsFor(NumFrames)} aggregated frames, more than aggregator max_groups = {Aggregator.MaxGroups}.");
        var layers = LayersFor(imageCrossAttentionLayers);
        if (layers.Count == 0)
            throw new ConfigException($"{source}: no video cross-attention layer: the base model has {imageCrossAttentionLayers.Count} image cross-attention layers (fewer than 4) and cross_attention_layers is not given.");
        for (int k = 0; k < layers.Count; k++)
        {
            if (layers[k] < 0 || layers[k] >= numLayers) throw new ConfigException($"{source}: cross_attention_layers entry {layers[k]} is outside the decoder's layers 0..{numLayers - 1}.");
            if (k > 0 && layers[k] <= layers[k - 1]) throw new ConfigException($"{source}: cross_attention_layers must be strictly ascending (got {layers[k - 1]} then {layers[k]}).");
        }
        return this;
    }
}

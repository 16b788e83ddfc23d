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
    /// 1-based ordinals of the image cross-attention layers that get a video cross-attention layer right before them;
    /// null = every 4th (4th, 8th, …: Llama 3 paper §7.2, 2 layers for 8 image layers, 5 for 20).
    /// </summary>
    public IReadOnlyList<int>? BeforeImageCrossAttention { get; init; }
    /// <summary>Token id of the <c>&lt;|video|&gt;</c> placeholder (<see cref="DefaultVideoTokenId"/>).</summary>
    public int VideoTokenId { get; init; } = DefaultVideoTokenId;

    /// <summary>The ordinals for a base model with <paramref name="imageLayers"/> image cross-attention layers.</summary>
    public IReadOnlyList<int> OrdinalsFor(int imageLayers) =>
        BeforeImageCrossAttention ?? Enumerable.Range(1, imageLayers / 4).Select(k => 4 * k).ToArray();

    /// <summary>Checks the values against a base model with <paramref name="imageLayers"/> image cross-attention layers.</summary>
    public VideoConfig Validate(int imageLayers, string source = "video config")
    {
        Aggregator.Validate(source + " aggregator");
        if (NumFrames < 1 || NumFrames > 4096) throw new ConfigException($"{source}: num_frames = {NumFrames} is out of range (1..4096).");
        if (Aggregator.MaxGroups > 0 && Aggregator.GroupsFor(NumFrames) > Aggregator.MaxGroups)
            throw new ConfigException($"{source}: num_frames = {NumFrames} in groups of {Aggregator.FramesPerGroup} make {Aggregator.GroupsFor(NumFrames)} aggregated frames, more than aggregator max_groups = {Aggregator.MaxGroups}.");
        var ord = OrdinalsFor(imageLayers);
        if (ord.Count == 0) throw new ConfigException($"{source}: no video cross-attention layer: the base model has {imageLayers} image cross-attention layers and none is chosen.");
        if (ord.Distinct().Count() != ord.Count) throw new ConfigException($"{source}: before_image_cross_attention has duplicates.");
        foreach (int o in ord)
            if (o < 1 || o > imageLayers) throw new ConfigException($"{source}: image cross-attention ordinal {o} is outside 1..{imageLayers}.");
        return this;
    }
}

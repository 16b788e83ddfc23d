using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;

namespace Llama3.Multimodal.Video;

/// <summary>Video-language presets: a tiny one for tests and the full-size shapes on the Llama 3.2 Vision sizes.</summary>
public static class VideoPresets
{
    /// <summary>Preset names accepted by <see cref="Get"/>.</summary>
    public static IReadOnlyList<string> Names { get; } = new[] { "tiny-video", "llama3.2-11b-video", "llama3.2-90b-video" };

    /// <summary>Returns the preset named <paramref name="name"/>; throws <see cref="ConfigException"/> listing the known names.</summary>
    public static VideoLanguageConfig Get(string name) => name switch
    {
        // On tiny-vision (4 × 65 tokens per frame, 2 image layers): 8 frames in groups of 4 → 2 aggregated frames as in
        // SFT, 1 perceiver layer with 16 latents (2 heads of 16), time embeddings for up to 8 frames, group embeddings
        // for up to 4 aggregated frames, and one video layer before the 2nd image layer (every 4th would give none with only 2).
        "tiny-video" => Build(VisionPresets.Get("tiny-vision"), b => new VideoConfig
        {
            Aggregator = new TemporalAggregatorConfig
            {
                Dim = b.Text.HiddenSize, TokensPerFrame = TokensPerFrame(b), NumLatents = 16, NumLayers = 1, NumHeads = 2,
                HeadDim = 16, FfnMultiplier = 2, FramesPerGroup = 4, MaxFramesPerGroup = 8, MaxGroups = 4,
            },
            NumFrames = 8,
            CrossAttentionLayers = new[] { b.CrossAttentionLayers[1] },
        }),
        // Llama 3 paper §7.2: 64 frames, groups of 32, video layers before the 4th and 8th image layers (11B: 2 layers;
        // 90B: 5). Where the paper is silent, our choice: latents = tokens per frame (4 × 1601), 2 layers, group
        // embeddings for up to 4 aggregated frames, so that SFT's two aggregated frames keep their order.
        "llama3.2-11b-video" => Build(VisionPresets.Get("llama3.2-11b-vision"), Full),
        "llama3.2-90b-video" => Build(VisionPresets.Get("llama3.2-90b-vision"), Full),
        _ => throw new ConfigException($"unknown video preset '{name}'; known: {string.Join(", ", Names)}."),
    };

    static VideoConfig Full(VisionLanguageConfig b) => new()
    {
        Aggregator = new TemporalAggregatorConfig { Dim = b.Text.HiddenSize, TokensPerFrame = TokensPerFrame(b), MaxGroups = 4 },
    };

    static int TokensPerFrame(VisionLanguageConfig b) => b.Vision.MaxNumTiles * b.Vision.TokensPerTile;

    static VideoLanguageConfig Build(VisionLanguageConfig b, Func<VisionLanguageConfig, VideoConfig> video) =>
        new VideoLanguageConfig { Base = b, Video = video(b) }.Validate(b.Text.HiddenSize > 64 ? "preset" : "tiny-video preset");
}

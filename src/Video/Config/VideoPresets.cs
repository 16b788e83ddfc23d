using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Video;

/// <summary>Video adapter presets: a tiny one for tests and the full-size shapes for the Llama 3.2 Vision sizes.</summary>
public static class VideoPresets
{
    /// <summary>Preset names accepted by <see cref="Get"/>.</summary>
    public static IReadOnlyList<string> Names { get; } = new[] { "tiny-video", "llama3.2-11b-video", "llama3.2-90b-video" };

    /// <summary>Tokens per frame of the released image path: 4 tiles × (40 × 40 patches + class token) at 560 px.</summary>
    public const int TokensPerFrame560 = 4 * 1601;

    /// <summary>
    /// Returns the preset <paramref name="name"/>. <paramref name="tokensPerFrame"/> overrides the frame size the tiny
    /// preset expects (it must match the image path of the base model; full sizes use 4 × 1601).
    /// </summary>
    public static VideoConfig Get(string name, int? tokensPerFrame = null) => name switch
    {
        // Aggregator: 1 layer, 16 latents of width 64, 2 heads of 16; groups of 4 frames (time embeddings for up to 8),
        // 8 frames per clip, so a clip becomes 2 aggregated frames as in SFT; one video layer before the 2nd image layer.
        "tiny-video" => new VideoConfig
        {
            Aggregator = new TemporalAggregatorConfig
            {
                Dim = 64, TokensPerFrame = tokensPerFrame ?? 16, NumLatents = 16, NumLayers = 1, NumHeads = 2, HeadDim = 16,
                FfnMultiplier = 2, FramesPerGroup = 4, MaxFramesPerGroup = 8,
            },
            NumFrames = 8,
            BeforeImageCrossAttention = new[] { 2 },
        },
        "llama3.2-11b-video" => Full(4096, tokensPerFrame),
        "llama3.2-90b-video" => Full(8192, tokensPerFrame),
        _ => throw new ConfigException($"unknown video preset '{name}'; known: {string.Join(", ", Names)}."),
    };

    static VideoConfig Full(int dim, int? tokensPerFrame) => new()
    {
        Aggregator = new TemporalAggregatorConfig { Dim = dim, TokensPerFrame = tokensPerFrame ?? TokensPerFrame560 },
    };
}

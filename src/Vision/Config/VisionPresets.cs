using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Vision;

/// <summary>Published Llama 3.2 Vision shapes and the small test preset.</summary>
public static class VisionPresets
{
    /// <summary>Preset names accepted by <see cref="Get"/>.</summary>
    public static IReadOnlyList<string> Names { get; } = new[] { "tiny-vision", "llama3.2-11b-vision", "llama3.2-90b-vision" };

    static LlamaConfig Text(int dim, int selfLayers, int crossLayers, int heads, int ffn) => new()
    {
        HiddenSize = dim,
        NumLayers = selfLayers + crossLayers,
        NumHeads = heads,
        NumKvHeads = 8,
        IntermediateSize = ffn,
        VocabSize = 128256,
        ExtraEmbeddingRows = VisionLanguageConfig.ExtraEmbeddingRows,
        RopeTheta = 500000,
        RopeScaling = new RopeScaling(8, 1, 4, 8192),
        MaxPositionEmbeddings = 131072,
        TieWordEmbeddings = false,
    };

    /// <summary>Returns the preset named <paramref name="name"/>; throws <see cref="ConfigException"/> listing the known names.</summary>
    public static VisionLanguageConfig Get(string name) => name switch
    {
        // Every feature at toy size: GQA (4 q / 2 kv heads), rope scaling, 4 self + 2 cross blocks (cross at 1 and 4),
        // 112-px tiles of 14-px patches (65 tokens, padded to 72), 2 local + 1 global layers, intermediates [0, 1], and the
        // real 128 256-token vocabulary so the Llama 3 tokenizer drives it.
        "tiny-vision" => new VisionLanguageConfig
        {
            Text = new LlamaConfig
            {
                HiddenSize = 64, NumLayers = 6, NumHeads = 4, NumKvHeads = 2, IntermediateSize = 192, VocabSize = 128256,
                ExtraEmbeddingRows = VisionLanguageConfig.ExtraEmbeddingRows, TieWordEmbeddings = false,
                RopeTheta = 500000, RopeScaling = new RopeScaling(8, 1, 4, 8192), MaxPositionEmbeddings = 2048,
            },
            Vision = new VisionConfig
            {
                ImageSize = 112, PatchSize = 14, HiddenSize = 32, AttentionHeads = 2, IntermediateSize = 64,
                NumHiddenLayers = 2, NumGlobalLayers = 1, IntermediateLayersIndices = new[] { 0, 1 },
            },
            CrossAttentionLayers = VisionLanguageConfig.FusionSchedule(4, 2),
        },
        "llama3.2-11b-vision" => new VisionLanguageConfig
        {
            Text = Text(4096, 32, 8, 32, 14336),
            Vision = new VisionConfig(),
            CrossAttentionLayers = VisionLanguageConfig.FusionSchedule(32, 8),
        },
        "llama3.2-90b-vision" => new VisionLanguageConfig
        {
            Text = Text(8192, 80, 20, 64, 28672),
            Vision = new VisionConfig(),
            CrossAttentionLayers = VisionLanguageConfig.FusionSchedule(80, 20),
        },
        _ => throw new ConfigException($"unknown vision preset '{name}'; known: {string.Join(", ", Names)}."),
    };
}

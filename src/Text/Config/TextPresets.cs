namespace Llama3.Multimodal.Text;

/// <summary>
/// Published Llama 3 text shapes (Llama 3 paper §3.2, Table 3; Llama 3.2 1B/3B from their HF config.json) and the small
/// presets used by tests.
/// </summary>
public static class TextPresets
{
    static LlamaConfig Meta(int dim, int layers, int heads, double mult, int multipleOf, bool tied, double factor) => new()
    {
        HiddenSize = dim,
        NumLayers = layers,
        NumHeads = heads,
        NumKvHeads = 8,
        IntermediateSize = LlamaConfig.FfnHiddenSize(dim, mult, multipleOf),
        VocabSize = 128256,
        TieWordEmbeddings = tied,
        RopeTheta = 500000,
        RopeScaling = new RopeScaling(factor, 1, 4, 8192),
        MaxPositionEmbeddings = 131072,
    };

    /// <summary>Preset names accepted by <see cref="Get"/>.</summary>
    public static IReadOnlyList<string> Names { get; } = new[] { "tiny", "llama3.2-1b", "llama3.2-3b", "llama3.1-8b", "llama3.1-70b", "llama3.1-405b", "llama3-8b", "llama3-70b" };

    /// <summary>Returns the preset named <paramref name="name"/>; throws <see cref="ConfigException"/> listing the known names.</summary>
    public static LlamaConfig Get(string name) => name switch
    {
        // Small enough for unit tests, yet it keeps every feature: GQA (4 q / 2 kv heads), rope scaling, tied embeddings,
        // and the real 128 256-token vocabulary so the Llama 3 tokenizer drives it.
        "tiny" => new LlamaConfig
        {
            HiddenSize = 64, NumLayers = 2, NumHeads = 4, NumKvHeads = 2,
            IntermediateSize = LlamaConfig.FfnHiddenSize(64, null, 32), VocabSize = 128256, TieWordEmbeddings = true,
            RopeTheta = 500000, RopeScaling = new RopeScaling(8, 1, 4, 8192), MaxPositionEmbeddings = 2048,
        },
        "llama3.2-1b" => Meta(2048, 16, 32, 1.5, 256, true, 32),
        "llama3.2-3b" => Meta(3072, 28, 24, 1.0, 256, true, 32),
        "llama3.1-8b" => Meta(4096, 32, 32, 1.3, 1024, false, 8),
        "llama3.1-70b" => Meta(8192, 80, 64, 1.3, 4096, false, 8),
        "llama3.1-405b" => Meta(16384, 126, 128, 1.2, 4096, false, 8),
        "llama3-8b" => Meta(4096, 32, 32, 1.3, 1024, false, 8) with { RopeScaling = null, MaxPositionEmbeddings = 8192 },
        "llama3-70b" => Meta(8192, 80, 64, 1.3, 4096, false, 8) with { RopeScaling = null, MaxPositionEmbeddings = 8192 },
        _ => throw new ConfigException($"unknown text preset '{name}'; known: {string.Join(", ", Names)}."),
    };
}

using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Vision;

/// <summary>
/// Configuration of a Llama 3.2 Vision model (HF <c>MllamaConfig</c>): the text decoder (whose <c>NumLayers</c> counts
/// self- and cross-attention blocks together, as HF <c>num_hidden_layers</c> does), the image encoder, and the stack
/// indices of the cross-attention blocks.
/// </summary>
public sealed record VisionLanguageConfig
{
    /// <summary>Number of extra embedding rows Mllama adds after the vocabulary (<c>&lt;|image|&gt;</c> is the first).</summary>
    public const int ExtraEmbeddingRows = 8;

    /// <summary>Text decoder (HF <c>text_config</c>); <c>NumLayers</c> = self + cross blocks, <c>ExtraEmbeddingRows</c> = 8.</summary>
    public required LlamaConfig Text { get; init; }
    /// <summary>Image encoder (HF <c>vision_config</c>).</summary>
    public required VisionConfig Vision { get; init; }
    /// <summary>Stack indices of the cross-attention blocks (HF <c>text_config.cross_attention_layers</c>).</summary>
    public required IReadOnlyList<int> CrossAttentionLayers { get; init; }
    /// <summary>Token id of <c>&lt;|image|&gt;</c> as the model sees it (128256).</summary>
    public int ImageTokenIndex { get; init; } = 128256;

    /// <summary>Number of self-attention layers.</summary>
    public int SelfAttentionLayers => Text.NumLayers - CrossAttentionLayers.Count;

    /// <summary>
    /// HF stack indices for <paramref name="crossLayers"/> cross-attention blocks fused into <paramref name="selfLayers"/>
    /// self-attention layers with one block before every f-th self layer from the end, f = ceil(n / c) (HF converter
    /// <c>range(f − 1, n + c, f + 1)</c>): 32 + 8 → [3, 8, …, 38]; the paper's "after every 4th layer" is f = 4.
    /// </summary>
    public static IReadOnlyList<int> FusionSchedule(int selfLayers, int crossLayers)
    {
        if (selfLayers <= 0 || crossLayers <= 0 || crossLayers > selfLayers)
            throw new ConfigException($"cannot fuse {crossLayers} cross-attention layers into {selfLayers} self-attention layers.");
        int f = (selfLayers + crossLayers - 1) / crossLayers;
        var list = new List<int>();
        for (int i = f - 1; i < selfLayers + crossLayers; i += f + 1) list.Add(i);
        if (list.Count != crossLayers)
            throw new ConfigException($"{crossLayers} cross-attention layers do not fit evenly into {selfLayers} self-attention layers (interval {f} gives {list.Count}).");
        return list;
    }

    /// <summary>Checks consistency; throws <see cref="ConfigException"/> naming the field.</summary>
    public VisionLanguageConfig Validate(string source = "config")
    {
        Text.Validate(source + " text_config");
        Vision.Validate(source + " vision_config");
        if (CrossAttentionLayers.Count == 0) throw new ConfigException($"{source}: text_config.cross_attention_layers is empty.");
        if (CrossAttentionLayers.Distinct().Count() != CrossAttentionLayers.Count) throw new ConfigException($"{source}: text_config.cross_attention_layers has duplicates.");
        foreach (int i in CrossAttentionLayers)
            if (i < 0 || i >= Text.NumLayers) throw new ConfigException($"{source}: cross-attention layer index {i} is outside 0..{Text.NumLayers - 1}.");
        if (CrossAttentionLayers.Count >= Text.NumLayers) throw new ConfigException($"{source}: no self-attention layers left.");
        if (ImageTokenIndex < Text.VocabSize || ImageTokenIndex >= Text.EmbeddingRows)
            throw new ConfigException($"{source}: image_token_index {ImageTokenIndex} must be an extra embedding row ({Text.VocabSize}..{Text.EmbeddingRows - 1}).");
        return this;
    }

    /// <summary>Value equality including the lists.</summary>
    public bool Equals(VisionLanguageConfig? other) =>
        other is not null && Text with { EosTokenIds = Array.Empty<int>() } == other.Text with { EosTokenIds = Array.Empty<int>() }
        && Text.EosTokenIds.SequenceEqual(other.Text.EosTokenIds) && Vision.Equals(other.Vision)
        && CrossAttentionLayers.SequenceEqual(other.CrossAttentionLayers) && ImageTokenIndex == other.ImageTokenIndex;

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Text.HiddenSize, Text.NumLayers, Vision.GetHashCode(), ImageTokenIndex);
}

namespace Llama3.Multimodal.Vision;

/// <summary>
/// Shape of the Llama 3.2 Vision image encoder (HF <c>vision_config</c> of <c>MllamaConfig</c>). Defaults are the released
/// 11B-Instruct / 90B values (tile 560).
/// </summary>
public sealed record VisionConfig
{
    /// <summary>Tile side in pixels (560; 448 for the 11B base model; 224 in the paper).</summary>
    public int ImageSize { get; init; } = 560;
    /// <summary>Patch side in pixels (14).</summary>
    public int PatchSize { get; init; } = 14;
    /// <summary>Input channels (3).</summary>
    public int NumChannels { get; init; } = 3;
    /// <summary>Encoder width (1280).</summary>
    public int HiddenSize { get; init; } = 1280;
    /// <summary>Attention heads (16; JSON key <c>attention_heads</c>).</summary>
    public int AttentionHeads { get; init; } = 16;
    /// <summary>MLP hidden size (5120).</summary>
    public int IntermediateSize { get; init; } = 5120;
    /// <summary>Ungated local layers (32).</summary>
    public int NumHiddenLayers { get; init; } = 32;
    /// <summary>Gated global layers (8).</summary>
    public int NumGlobalLayers { get; init; } = 8;
    /// <summary>Local-layer indices whose input states are kept as multi-layer features ([3, 7, 15, 23, 30]).</summary>
    public IReadOnlyList<int> IntermediateLayersIndices { get; init; } = new[] { 3, 7, 15, 23, 30 };
    /// <summary>LayerNorm epsilon (1e-5).</summary>
    public double NormEps { get; init; } = 1e-5;
    /// <summary>Most tiles per image (4).</summary>
    public int MaxNumTiles { get; init; } = 4;
    /// <summary>Supported tile grids as (tiles high, tiles wide); aspect-ratio id = index + 1, 0 = padding image.</summary>
    public IReadOnlyList<(int H, int W)> SupportedAspectRatios { get; init; } = AspectRatiosFor(4);
    /// <summary>HF <c>initializer_range</c> (0.02).</summary>
    public double InitializerRange { get; init; } = 0.02;

    /// <summary>Patches per tile side.</summary>
    public int GridSize => ImageSize / PatchSize;
    /// <summary>Tokens per tile: patches plus the class token (1601 at 560).</summary>
    public int TokensPerTile => GridSize * GridSize + 1;
    /// <summary>Tokens per tile after padding to a multiple of 8 (1608 at 560).</summary>
    public int PaddedTokensPerTile => (TokensPerTile + 7) / 8 * 8;
    /// <summary>Output width per token: hidden · (1 + intermediate layers) (7680).</summary>
    public int OutputDim => HiddenSize * (1 + IntermediateLayersIndices.Count);
    /// <summary>Largest aspect-ratio id (8 for 4 tiles).</summary>
    public int MaxAspectRatioId => SupportedAspectRatios.Count;
    /// <summary>Per-head width.</summary>
    public int HeadDim => HiddenSize / AttentionHeads;

    /// <summary>All grids (h, w) with h·w ≤ <paramref name="maxTiles"/>, in the reference order (h ascending, then w).</summary>
    public static IReadOnlyList<(int H, int W)> AspectRatiosFor(int maxTiles)
    {
        var list = new List<(int, int)>();
        for (int a = 1; a <= maxTiles; a++)
            for (int b = 1; b <= maxTiles; b++)
                if (a * b <= maxTiles) list.Add((a, b));
        return list;
    }

    /// <summary>Checks consistency; throws <see cref="Text.ConfigException"/> naming the field.</summary>
    public VisionConfig Validate(string source = "vision_config")
    {
        void Positive(string name, long v, long max)
        {
            if (v <= 0 || v > max) throw new Text.ConfigException($"{source}: {name} = {v} is out of range (1..{max}).");
        }
        Positive("image_size", ImageSize, 1 << 14);
        Positive("patch_size", PatchSize, 1 << 10);
        Positive("num_channels", NumChannels, 16);
        Positive("hidden_size", HiddenSize, 1 << 16);
        Positive("attention_heads", AttentionHeads, 1024);
        Positive("intermediate_size", IntermediateSize, 1 << 18);
        Positive("num_hidden_layers", NumHiddenLayers, 1024);
        if (NumGlobalLayers < 0 || NumGlobalLayers > 1024) throw new Text.ConfigException($"{source}: num_global_layers = {NumGlobalLayers} is out of range (0..1024).");
        Positive("max_num_tiles", MaxNumTiles, 64);
        if (ImageSize % PatchSize != 0) throw new Text.ConfigException($"{source}: image_size {ImageSize} is not a multiple of patch_size {PatchSize}.");
        if (HiddenSize % AttentionHeads != 0) throw new Text.ConfigException($"{source}: hidden_size {HiddenSize} is not divisible by attention_heads {AttentionHeads}.");
        if (!double.IsFinite(NormEps) || NormEps <= 0 || NormEps > 1) throw new Text.ConfigException($"{source}: norm_eps {NormEps} must be in (0, 1].");
        if (IntermediateLayersIndices.Count == 0) throw new Text.ConfigException($"{source}: intermediate_layers_indices is empty.");
        foreach (int i in IntermediateLayersIndices)
            if (i < 0 || i >= NumHiddenLayers) throw new Text.ConfigException($"{source}: intermediate layer index {i} is outside 0..{NumHiddenLayers - 1}.");
        if (SupportedAspectRatios.Count == 0) throw new Text.ConfigException($"{source}: supported_aspect_ratios is empty.");
        foreach (var (h, w) in SupportedAspectRatios)
            if (h <= 0 || w <= 0 || h * w > MaxNumTiles) throw new Text.ConfigException($"{source}: aspect ratio [{h}, {w}] needs {h * w} tiles, more than max_num_tiles {MaxNumTiles} (or is not positive).");
        if (SupportedAspectRatios.Distinct().Count() != SupportedAspectRatios.Count) throw new Text.ConfigException($"{source}: supported_aspect_ratios has duplicates.");
        return this;
    }

    /// <summary>Value equality including the lists.</summary>
    public bool Equals(VisionConfig? other) =>
        other is not null && ImageSize == other.ImageSize && PatchSize == other.PatchSize && NumChannels == other.NumChannels
        && HiddenSize == other.HiddenSize && AttentionHeads == other.AttentionHeads && IntermediateSize == other.IntermediateSize
        && NumHiddenLayers == other.NumHiddenLayers && NumGlobalLayers == other.NumGlobalLayers
        && IntermediateLayersIndices.SequenceEqual(other.IntermediateLayersIndices) && NormEps == other.NormEps
        && MaxNumTiles == other.MaxNumTiles && SupportedAspectRatios.SequenceEqual(other.SupportedAspectRatios)
        && InitializerRange == other.InitializerRange;

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(ImageSize, PatchSize, HiddenSize, NumHiddenLayers, NumGlobalLayers, MaxNumTiles);
}

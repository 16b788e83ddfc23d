namespace Llama3.Multimodal.Training;

/// <summary>Which decoder to train: a preset with optional shape overrides, or a checkpoint to start from.</summary>
public sealed record ModelSection
{
    /// <summary>Text preset name (<c>TextPresets</c>); default <c>tiny</c>.</summary>
    public string Preset { get; init; } = "tiny";
    /// <summary>Checkpoint folder to start from (HF or Meta layout); null = fresh weights from <see cref="TrainConfig.Seed"/>.</summary>
    public string? InitFrom { get; init; }
    /// <summary>Overrides the preset's hidden size.</summary>
    public int? HiddenSize { get; init; }
    /// <summary>Overrides the preset's layer count.</summary>
    public int? NumLayers { get; init; }
    /// <summary>Overrides the preset's attention heads.</summary>
    public int? NumHeads { get; init; }
    /// <summary>Overrides the preset's key/value heads.</summary>
    public int? NumKvHeads { get; init; }
    /// <summary>Overrides the preset's FFN hidden size.</summary>
    public int? IntermediateSize { get; init; }
    /// <summary>Overrides the preset's maximum context.</summary>
    public int? MaxPositionEmbeddings { get; init; }
    /// <summary>Overrides whether the output head is tied to the embedding.</summary>
    public bool? TieWordEmbeddings { get; init; }
    /// <summary>Standard deviation of the fresh-weight normal init (HF <c>initializer_range</c>); default 0.02.</summary>
    public double InitStd { get; init; } = 0.02;
}

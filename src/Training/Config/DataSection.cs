namespace Llama3.Multimodal.Training;

/// <summary>Training data: JSONL manifests (paths inside are relative to the manifest) and sequence length.</summary>
public sealed record DataSection
{
    /// <summary>Training manifest (JSONL). Relative paths are resolved against the config file's folder.</summary>
    public string Train { get; init; } = "";
    /// <summary>Optional evaluation manifest (same kind as <see cref="Train"/>).</summary>
    public string? Eval { get; init; }
    /// <summary>Sequence length in tokens (packed length for pretraining, truncation length otherwise); default 4096.</summary>
    public int SeqLen { get; init; } = 4096;
    /// <summary>Skip and count malformed records instead of failing on the first one.</summary>
    public bool SkipBadRecords { get; init; }
    /// <summary>Shuffle the training records each epoch (seeded by <see cref="TrainConfig.Seed"/> and the epoch).</summary>
    public bool Shuffle { get; init; } = true;
    /// <summary>Records prepared ahead on a background thread; default 64.</summary>
    public int Prefetch { get; init; } = 64;
}

namespace Llama3.Multimodal.Training;

/// <summary>Global batch reached by gradient accumulation over micro-batches, and the batch-size ramp.</summary>
public sealed record BatchSection
{
    /// <summary><c>tokens</c> or <c>samples</c>: the unit of <see cref="Global"/>.</summary>
    public string Unit { get; init; } = "tokens";
    /// <summary>Target global batch per optimizer step (in <see cref="Unit"/>); default 4 194 304 tokens (4M).</summary>
    public long Global { get; init; } = 4L << 20;
    /// <summary>Sequences (or samples) per micro-batch; default 1.</summary>
    public int Micro { get; init; } = 1;
    /// <summary>Llama 3 batch-size ramp: from <see cref="RampStage.AfterTokens"/> tokens on, use that stage's batch and length.</summary>
    public IReadOnlyList<RampStage> Ramp { get; init; } = Array.Empty<RampStage>();
}

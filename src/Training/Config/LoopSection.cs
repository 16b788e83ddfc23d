namespace Llama3.Multimodal.Training;

/// <summary>Training-loop control.</summary>
public sealed record LoopSection
{
    /// <summary>Stop after this many optimizer steps (default: <see cref="OptimSection.TotalSteps"/>); the schedule still spans TotalSteps.</summary>
    public long? MaxSteps { get; init; }
    /// <summary>Evaluate every N steps on <see cref="DataSection.Eval"/> (0 = never).</summary>
    public int EvalEvery { get; init; }
    /// <summary>Micro-batches per evaluation; default 8.</summary>
    public int EvalBatches { get; init; } = 8;
    /// <summary>Checkpoint every N steps (and at the end); default 1000.</summary>
    public int SaveEvery { get; init; } = 1000;
    /// <summary>Checkpoints kept (older ones are deleted); default 3.</summary>
    public int KeepLast { get; init; } = 3;
    /// <summary>Average the last K checkpoints into <c>OUT/averaged</c> at the end (0 = off).</summary>
    public int AverageLast { get; init; }
    /// <summary>Progress line/metrics interval in steps; default 1.</summary>
    public int LogEvery { get; init; } = 1;
    /// <summary>Components or parameter-name prefixes that only these train (empty = the recipe's default).</summary>
    public IReadOnlyList<string> Trainable { get; init; } = Array.Empty<string>();
    /// <summary>Components or parameter-name prefixes kept frozen (bit-identical, no optimizer state).</summary>
    public IReadOnlyList<string> Freeze { get; init; } = Array.Empty<string>();
    /// <summary><c>cpu</c> or <c>cuda</c>.</summary>
    public string Device { get; init; } = "cpu";
    /// <summary>
    /// Split the decoder's layers over several devices in this process (text recipes; models larger than one device):
    /// a list such as <c>cuda:0,cuda:1</c> (contiguous equal ranges), or <c>auto</c> (every CUDA device, ranges sized by
    /// free memory). Null = the whole model on <see cref="Device"/>.
    /// </summary>
    public string? Devices { get; init; }
    /// <summary><c>f32</c>, or <c>bf16</c> (bf16 compute copy with f32 master weights and moments).</summary>
    public string Dtype { get; init; } = "f32";
}

namespace Llama3.Multimodal.Training;

/// <summary>How a <see cref="Trainer"/> reports and stops.</summary>
public sealed record TrainerOptions
{
    /// <summary>Plain progress lines go here (default: standard output); null = silent.</summary>
    public TextWriter? Log { get; init; } = Console.Out;
    /// <summary>Show the live Spectre.Console bar (only when output is not redirected).</summary>
    public bool Live { get; init; } = !Console.IsOutputRedirected;
    /// <summary>Write TensorBoard event files under <c>OUT/tensorboard</c>.</summary>
    public bool TensorBoard { get; init; } = true;
    /// <summary>Write <c>OUT/curves.png</c> at each checkpoint and at the end.</summary>
    public bool Plot { get; init; } = true;
    /// <summary>Test hook: runs inside the temporary checkpoint folder just before it is committed by rename.</summary>
    internal Action<string>? BeforeCheckpointCommit { get; init; }
}

namespace Llama3.Multimodal.Training;

/// <summary>How a <see cref="Trainer"/> reports and stops.</summary>
public sealed record TrainerOptions
{
    /// <summary>
    /// Receives the progress of the run (default: plain lines on standard output, <see cref="TextTrainingProgress"/>);
    /// null = silent. <c>mm-train</c> shows a live bar here.
    /// </summary>
    public ITrainingProgress? Progress { get; init; } = new TextTrainingProgress(Console.Out);
    /// <summary>Write TensorBoard event files under <c>OUT/tensorboard</c>.</summary>
    public bool TensorBoard { get; init; } = true;
    /// <summary>Write <c>OUT/curves.png</c> at each checkpoint and at the end.</summary>
    public bool Plot { get; init; } = true;
    /// <summary>
    /// Data-parallel collectives (default: a single process). With more than one rank, rank 0's weights are broadcast
    /// at start, micro-batch i of each step is trained by rank i mod world, gradients are summed across ranks before
    /// clipping, and only rank 0 writes checkpoints, metrics and progress.
    /// </summary>
    public Distributed.ICollectives? Collectives { get; init; }
    /// <summary>
    /// ZeRO stage 1 with several ranks: each rank keeps AdamW moments only for its share of the parameters (slot i
    /// belongs to rank i mod world), updates those and broadcasts them; checkpoints still hold the full state.
    /// </summary>
    public bool ShardOptimizerState { get; init; }
    /// <summary>Test hook: runs inside the temporary checkpoint folder just before it is committed by rename.</summary>
    internal Action<string>? BeforeCheckpointCommit { get; init; }
}

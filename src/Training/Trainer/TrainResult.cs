namespace Llama3.Multimodal.Training;

/// <summary>What a training run did.</summary>
/// <param name="Steps">Optimizer steps completed in total (resumed steps included).</param>
/// <param name="History">(step, loss, lr) of every step run in this call.</param>
/// <param name="Eval">(step, eval loss) of every evaluation in this call.</param>
/// <param name="LastCheckpoint">Folder of the last checkpoint written, if any.</param>
/// <param name="TokensSeen">Training tokens consumed in total.</param>
public sealed record TrainResult(long Steps, IReadOnlyList<(long Step, double Loss, double Lr)> History,
    IReadOnlyList<(long Step, double Loss)> Eval, string? LastCheckpoint, long TokensSeen);

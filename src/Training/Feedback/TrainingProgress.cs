namespace Llama3.Multimodal.Training;

/// <summary>Where a <see cref="Trainer"/> stands after an optimizer step.</summary>
public sealed record TrainProgress
{
    /// <summary>Steps done.</summary>
    public required long Step { get; init; }
    /// <summary>Steps of the run.</summary>
    public required long TotalSteps { get; init; }
    /// <summary>Mean training loss of the step.</summary>
    public required double Loss { get; init; }
    /// <summary>Learning rate of the step.</summary>
    public required double LearningRate { get; init; }
    /// <summary>Training tokens per second over the run so far.</summary>
    public required double TokensPerSecond { get; init; }
    /// <summary>Estimated time to the last step.</summary>
    public required TimeSpan Eta { get; init; }
    /// <summary>True on <c>train.log_every</c> steps and on the last step (where line-based reporters write a line).</summary>
    public required bool IsLogStep { get; init; }

    /// <summary>The step as one line: <c>step 10/300  loss 2.3456  lr 3.00E-003  1234 tok/s  ETA 00:01:02</c>.</summary>
    public override string ToString() =>
        $"step {Step}/{TotalSteps}  loss {Loss:F4}  lr {LearningRate:E2}  {TokensPerSecond:F0} tok/s  ETA {Eta:hh\\:mm\\:ss}";
}

/// <summary>
/// Receives a <see cref="Trainer"/>'s progress: every optimizer step and every event worth a line (resume, evaluation,
/// skipped records, averaging). Both are called on the training thread, between steps, so an implementation must
/// return quickly and should not start work of its own on other threads while tensor code runs.
/// </summary>
public interface ITrainingProgress
{
    /// <summary>Called once at the start of <see cref="Trainer.Run"/> with the first and the last step.</summary>
    void Start(long startStep, long totalSteps);
    /// <summary>Called after every optimizer step.</summary>
    void Report(TrainProgress progress);
    /// <summary>A one-line event.</summary>
    void Message(string text);
    /// <summary>Called once when the run ends (normally or not).</summary>
    void Finish();
}

/// <summary>Plain progress lines on a <see cref="TextWriter"/>: one per log step and one per event.</summary>
public sealed class TextTrainingProgress : ITrainingProgress
{
    readonly TextWriter _out;

    /// <summary>Writes to <paramref name="output"/>.</summary>
    public TextTrainingProgress(TextWriter output) => _out = output;

    /// <inheritdoc/>
    public void Start(long startStep, long totalSteps) { }
    /// <inheritdoc/>
    public void Report(TrainProgress progress)
    {
        if (progress.IsLogStep) _out.WriteLine(progress.ToString());
    }
    /// <inheritdoc/>
    public void Message(string text) => _out.WriteLine(text);
    /// <inheritdoc/>
    public void Finish() => _out.Flush();
}

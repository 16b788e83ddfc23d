using Llama3.Multimodal.Training;
using Spectre.Console;

namespace Llama3.Multimodal.Tools.MmTrain;

/// <summary>
/// The live progress bar of <c>mm-train</c> (step, loss, lr, tokens/s, ETA) on an interactive console. The bar is
/// redrawn from the training thread in <see cref="Report"/> (no refresh thread), so that nothing allocates on another
/// thread while tensor code runs.
/// </summary>
sealed class ProgressBar : ITrainingProgress
{
    readonly ManualResetEventSlim _ready = new(), _done = new();
    Task? _live;
    ProgressTask? _task;
    ProgressContext? _ctx;

    public void Start(long startStep, long totalSteps)
    {
        _live = Task.Run(() => AnsiConsole.Progress().AutoClear(false).HideCompleted(false).AutoRefresh(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                _ctx = ctx;
                _task = ctx.AddTask("training", maxValue: totalSteps);
                _task.Value = startStep;
                _ready.Set();
                _done.Wait();
            }));
        _ready.Wait();
    }

    public void Report(TrainProgress progress)
    {
        if (_task is null) return;
        _task.Value = progress.Step;
        _task.Description = Markup.Escape(progress.ToString());
        _ctx!.Refresh();
    }

    public void Message(string text) => AnsiConsole.MarkupLine(Markup.Escape(text));

    public void Finish()
    {
        _done.Set();
        _live?.Wait();
        _live = null; _task = null; _ctx = null;
        _ready.Reset(); _done.Reset();
    }
}

using Spectre.Console;

namespace Llama3.Multimodal.Training;

/// <summary>
/// Live progress (Spectre.Console bar with step, loss, lr, tokens/s, ETA) on an interactive console; plain lines on a
/// <see cref="TextWriter"/> when output is redirected.
/// </summary>
internal sealed class ProgressDisplay : IDisposable
{
    readonly TextWriter? _plain;
    readonly ManualResetEventSlim _ready = new(), _done = new();
    readonly Task? _live;
    ProgressTask? _task;
    ProgressContext? _ctx;

    public ProgressDisplay(long total, long start, TextWriter? plain, bool live)
    {
        if (!live) { _plain = plain; return; }
        // No auto-refresh thread: the bar is redrawn from the training thread in Update, so that nothing allocates on
        // another thread while tensor code runs (see BackgroundWork).
        _live = Task.Run(() => AnsiConsole.Progress().AutoClear(false).HideCompleted(false).AutoRefresh(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                _ctx = ctx;
                _task = ctx.AddTask("training", maxValue: total);
                _task.Value = start;
                _ready.Set();
                _done.Wait();
            }));
        _ready.Wait();
    }

    public void Update(long step, long total, double loss, double lr, double tokensPerSecond, TimeSpan eta, bool printLine)
    {
        string text = $"step {step}/{total}  loss {loss:F4}  lr {lr:E2}  {tokensPerSecond:F0} tok/s  ETA {eta:hh\\:mm\\:ss}";
        if (_task is not null) { _task.Value = step; _task.Description = Markup.Escape(text); _ctx!.Refresh(); }
        else if (printLine) _plain?.WriteLine(text);
    }

    public void Message(string text)
    {
        if (_task is not null) AnsiConsole.MarkupLine(Markup.Escape(text));
        else _plain?.WriteLine(text);
    }

    public void Dispose()
    {
        _done.Set();
        _live?.Wait();
        _ready.Dispose(); _done.Dispose();
    }
}

namespace Llama3.Multimodal.Tests.Shared;

/// <summary>Runs a command-line tool's <c>Main</c> in process with its output captured (one run at a time: the console is shared).</summary>
internal static class ConsoleCapture
{
    public static (int Code, string Out, string Err) Run(Func<string[], int> main, params string[] args)
    {
        var o = new StringWriter(); var e = new StringWriter();
        lock (typeof(Console))
        {
            var (so, se) = (Console.Out, Console.Error);
            Console.SetOut(o); Console.SetError(e);
            try { return (main(args), o.ToString(), e.ToString()); }
            finally { Console.SetOut(so); Console.SetError(se); }
        }
    }
}

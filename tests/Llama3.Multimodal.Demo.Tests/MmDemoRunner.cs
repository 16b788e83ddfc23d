namespace Llama3.Multimodal.Demo.Tests;

/// <summary>Runs <c>mm-demo</c> in process with its output captured (one run at a time: the console is shared).</summary>
internal static class MmDemoRunner
{
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter(); var e = new StringWriter();
        lock (typeof(Console))
        {
            var (so, se) = (Console.Out, Console.Error);
            Console.SetOut(o); Console.SetError(e);
            try { return (Demo.Tool.Program.Main(args), o.ToString(), e.ToString()); }
            finally { Console.SetOut(so); Console.SetError(se); }
        }
    }
}

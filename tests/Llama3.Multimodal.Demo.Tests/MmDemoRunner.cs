namespace Llama3.Multimodal.Demo.Tests;

/// <summary>Runs <c>mm-demo</c> in process with its output captured (one run at a time: the console is shared).</summary>
internal static class MmDemoRunner
{
    public static (int Code, string Out, string Err) Run(params string[] args) =>
        Llama3.Multimodal.Tests.Shared.ConsoleCapture.Run(Demo.Tool.Program.Main, args);
}

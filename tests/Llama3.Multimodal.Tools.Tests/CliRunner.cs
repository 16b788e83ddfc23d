using Llama3.Multimodal.Tools.Mm;

namespace Llama3.Multimodal.Tools.Tests;

/// <summary>Runs <c>mm</c> in-process with captured output, and makes scratch folders for the CLI tests.</summary>
internal static class CliRunner
{
    public static (int Code, string Out, string Err) Mm(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = MmCli.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    public static string Temp()
    {
        return Llama3.Multimodal.Tests.Shared.TestTemp.NewDir("l3mm-cli");
    }
}

using System.CommandLine;
using Llama3.Multimodal.Tools.Mm.Commands;

namespace Llama3.Multimodal.Tools.Mm;

/// <summary>Entry point of the <c>mm</c> tool, callable in-process (tests pass their own writers).</summary>
public static class MmCli
{
    /// <summary>Parses <paramref name="args"/> and runs the command; returns the exit code.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var root = new RootCommand("mm — run, inspect and convert multimodal Llama 3 models (text, image, video, speech).");
        var io = new CliIO(stdout, stderr);
        foreach (var c in TextCommands.All(io)) root.Subcommands.Add(c);
        var config = new InvocationConfiguration { Output = stdout, Error = stderr };
        try
        {
            return root.Parse(args).Invoke(config);
        }
        catch (CliException e)
        {
            stderr.WriteLine($"error: {e.Message}");
            return 2;
        }
    }
}

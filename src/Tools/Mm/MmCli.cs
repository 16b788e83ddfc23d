using System.CommandLine;
using Llama3.Multimodal.Tools.Mm.Commands;

namespace Llama3.Multimodal.Tools.Mm;

/// <summary>Entry point of the <c>mm</c> tool, callable in-process (tests pass their own writers).</summary>
public static class MmCli
{
    /// <summary>
    /// <c>init</c> and <c>generate</c> cover every modality: <c>init --config tiny-vision</c> (a vision preset or an
    /// Mllama config.json) runs <c>vision-init</c>, a video preset <c>video-init</c>, a speech preset <c>speech-init</c>;
    /// <c>generate --image …</c> (or a model folder holding a vision model) runs <c>vision-generate</c>, and
    /// <c>generate --video …</c> runs <c>video-generate</c>. Everything else passes through.
    /// </summary>
    public static string[] Route(string[] args)
    {
        if (args.Length == 0) return args;
        string? Value(string name)
        {
            int i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        }
        var a = (string[])args.Clone();
        if (a[0] == "init" && Value("--config") is string cfg)
        {
            if (Video.VideoPresets.Names.Contains(cfg)) a[0] = "video-init";
            else if (Vision.VisionPresets.Names.Contains(cfg) || IsModelType(cfg, "mllama")) a[0] = "vision-init";
            else if (Speech.SpeechPresets.Names.Contains(cfg))
            {
                a[0] = "speech-init";
                a[Array.IndexOf(a, "--config")] = "--preset";
            }
        }
        else if (a[0] == "generate" && a.Contains("--video")) a[0] = "video-generate";
        else if (a[0] == "generate" && (a.Contains("--image") || Value("--model") is string m && IsModelType(Path.Combine(m, "config.json"), "mllama")))
            a[0] = "vision-generate";
        return a;
    }

    static bool IsModelType(string configPath, string type)
    {
        try
        {
            if (!File.Exists(configPath) || new FileInfo(configPath).Length > Text.LlamaConfigJson.MaxFileBytes) return false;
            var o = Text.LlamaConfigJson.ReadObject(configPath);
            return o["model_type"] is System.Text.Json.Nodes.JsonValue v && v.TryGetValue(out string? s) && s == type;
        }
        catch (Text.ConfigException) { return false; }
    }

    /// <summary>Parses <paramref name="args"/> and runs the command; returns the exit code. <paramref name="stop"/> ends <c>mm serve</c>.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, TextReader? stdin = null, CancellationToken stop = default)
    {
        var root = new RootCommand("mm — run, inspect and convert multimodal Llama 3 models (text, image, video, speech).");
        var io = new CliIO(stdout, stderr, stdin ?? Console.In);
        foreach (var c in TextCommands.All(io)) root.Subcommands.Add(c);
        foreach (var c in SpeechCommands.All(io)) root.Subcommands.Add(c);
        foreach (var c in VisionCommands.All(io)) root.Subcommands.Add(c);
        foreach (var c in VideoCommands.All(io)) root.Subcommands.Add(c);
        foreach (var c in QuantizeCommands.All(io)) root.Subcommands.Add(c);
        root.Subcommands.Add(ServeCommand.Create(io, stop));
        var config = new InvocationConfiguration { Output = stdout, Error = stderr };
        try
        {
            return root.Parse(Route(args)).Invoke(config);
        }
        catch (CliException e)
        {
            stderr.WriteLine($"error: {e.Message}");
            return 2;
        }
    }
}

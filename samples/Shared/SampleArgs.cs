using Llama3.Multimodal.Text;

/// <summary>The samples' command line: an optional <c>--model DIR</c> (default: the shipped demo model) and the rest.</summary>
static class SampleArgs
{
    /// <summary>
    /// Runs a sample's body; bad input (a missing or undecodable media file, a model folder that is not a checkpoint,
    /// a wrong argument) ends it with one line "error: …" naming the file or value and exit code 1, not a stack trace.
    /// </summary>
    public static int Run(Func<int> body)
    {
        try { return body(); }
        catch (Exception e) when (e is MediaDecodeException or CheckpointFormatException or ConfigException or TokenizerFormatException
            or ArgumentException or FileNotFoundException or DirectoryNotFoundException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    /// <summary>The asynchronous form of <see cref="Run"/>.</summary>
    public static async Task<int> RunAsync(Func<Task<int>> body)
    {
        try { return await body(); }
        catch (Exception e) when (e is MediaDecodeException or CheckpointFormatException or ConfigException or TokenizerFormatException
            or ArgumentException or FileNotFoundException or DirectoryNotFoundException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    /// <summary>Splits <c>--model DIR</c> from <paramref name="args"/>; without it, the shipped <c>assets/models/demo/{demo}</c>.</summary>
    public static (string Model, List<string> Others) Parse(string[] args, string demo)
    {
        var rest = args.ToList();
        int i = rest.IndexOf("--model");
        if (i < 0) return (DemoModel(demo), rest);
        if (i + 1 >= rest.Count) throw new ArgumentException("--model needs a model folder.");
        string model = rest[i + 1];
        rest.RemoveRange(i, 2);
        return (model, rest);
    }

    /// <summary>The shipped demo model <paramref name="name"/>, looked for above the program and the current folder.</summary>
    public static string DemoModel(string name)
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            {
                string p = Path.Combine(d.FullName, "assets", "models", "demo", name);
                if (Directory.Exists(p)) return p;
            }
        throw new DirectoryNotFoundException($"the shipped model assets/models/demo/{name} was not found above {AppContext.BaseDirectory}; pass --model DIR.");
    }
}

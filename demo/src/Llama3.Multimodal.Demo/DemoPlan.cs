using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Llama3.Multimodal.Demo;

/// <summary>
/// A reproduction plan (<c>demo/plan.json</c>): the ordered commands that made the shipped demo models, each one step
/// with its tool (<c>mm-demo</c>, <c>mm-train</c> or <c>mm</c>), subcommand, config, overrides and arguments, its inputs
/// (references to earlier steps' outputs) and its recorded wall time. <see cref="PlanRunner"/> runs it.
/// </summary>
/// <remarks>
/// In a step's <c>set</c> values and <c>args</c>, a string <c>@ID</c> names step ID's result (a training step's newest
/// checkpoint, otherwise its output folder), <c>@ID/PATH</c> a path inside step ID's output folder, and <c>@ID~N</c> its
/// N newest checkpoints (N arguments, oldest first); <c>{out}</c> is this step's output folder and <c>{plan}</c> the plan
/// file's folder. <c>scale</c> lists the integers that <c>--scale F</c> multiplies: <c>set</c> keys
/// (<c>optim.total_steps</c>), options whose next argument is the integer (<c>--count</c>), or <c>--option:I</c> for the
/// I-th (0-based) colon-separated field of that option's value; <c>KEY&gt;=N</c> keeps a scaled value at N or more; <c>@:</c> scales the <c>:N</c> or <c>:A-B</c> slice
/// after a reference (an <c>mm-demo concat</c> input).
/// </remarks>
public sealed record DemoPlan(string Path, string Description, int Threads, IReadOnlyList<PlanStep> Steps, IReadOnlyList<PlanOutput> Outputs)
{
    /// <summary>Tools a step may name.</summary>
    public static IReadOnlyList<string> Tools { get; } = new[] { "mm-demo", "mm-train", "mm" };

    /// <summary>The folder of the plan file (configs are named relative to it).</summary>
    public string Folder => System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path))!;

    /// <summary>Sum of the steps' recorded wall times, in seconds, and the steps that have none.</summary>
    public (double Seconds, IReadOnlyList<string> Unrecorded) RecordedWallTime() =>
        (Steps.Sum(s => s.WallTimeSeconds ?? 0), Steps.Where(s => s.WallTimeSeconds is null).Select(s => s.Id).ToList());

    /// <summary>The step named <paramref name="id"/>.</summary>
    public PlanStep Step(string id) => Steps.FirstOrDefault(s => s.Id == id) ?? throw new ConfigException($"{Path}: no step '{id}'.");

    /// <summary>Reads and checks a plan file (structure and references; <see cref="Validate"/> checks configs too).</summary>
    public static DemoPlan Load(string path)
    {
        if (!File.Exists(path)) throw new ConfigException($"{path}: plan file not found.");
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path), null, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }) as JsonObject
                ?? throw new ConfigException($"{path}: not a JSON object.");
        }
        catch (JsonException e) { throw new ConfigException($"{path}: invalid JSON: {e.Message}", e); }
        if (root["format"]?.GetValue<int>() is not 1) throw new ConfigException($"{path}: \"format\" must be 1.");
        var steps = new List<PlanStep>();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        if (root["steps"] is not JsonArray arr || arr.Count == 0) throw new ConfigException($"{path}: \"steps\" must be a non-empty array.");
        foreach (var node in arr)
        {
            var step = PlanStep.Parse(path, node as JsonObject ?? throw new ConfigException($"{path}: every step must be an object."));
            if (!ids.Add(step.Id)) throw new ConfigException($"{path}: step id '{step.Id}' is used twice.");
            foreach (var input in step.Inputs)
                if (!ids.Contains(input) || input == step.Id)
                    throw new ConfigException($"{path}: step '{step.Id}' refers to '@{input}', which is not an earlier step.");
            steps.Add(step);
        }
        var outputs = new List<PlanOutput>();
        foreach (var node in root["outputs"] as JsonArray ?? new JsonArray())
        {
            var o = node as JsonObject ?? throw new ConfigException($"{path}: every output must be an object.");
            string Req(string k) => o[k]?.GetValue<string>() is { Length: > 0 } v ? v : throw new ConfigException($"{path}: an output has no \"{k}\".");
            var output = new PlanOutput(Req("name"), Req("step"), o["files_from"]?.GetValue<string>(), o["tokenizer"]?.GetValue<string>());
            foreach (var r in new[] { output.Step, output.FilesFrom }.Where(r => r is not null))
                if (!ids.Contains(r!)) throw new ConfigException($"{path}: output '{output.Name}' names step '{r}', which the plan does not have.");
            if (output.Tokenizer is { } t && (!t.StartsWith('@') || !ids.Contains(PlanStep.RefId(t))))
                throw new ConfigException($"{path}: output '{output.Name}': \"tokenizer\" must be @STEP/PATH of a step of the plan, not '{t}'.");
            if (!output.Name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
                throw new ConfigException($"{path}: output name '{output.Name}' must be letters, digits, '-' or '_'.");
            outputs.Add(output);
        }
        int threads = root["threads"]?.GetValue<int>() ?? 2;
        return new DemoPlan(path, root["description"]?.GetValue<string>() ?? "", threads, steps, outputs);
    }

    /// <summary>
    /// Checks what <see cref="Load"/> cannot: every config a step names exists and loads over its recipe's defaults
    /// with the step's overrides, and every step has a recorded wall time or a note saying why not. Returns the problems
    /// (empty: valid).
    /// </summary>
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        DemoExtensions.Register();
        foreach (var s in Steps)
        {
            if (s.WallTimeSeconds is null && string.IsNullOrWhiteSpace(s.Note)) problems.Add($"step '{s.Id}': neither \"wall_time_s\" nor a \"note\".");
            if (s.Config is null) continue;
            string cfg = System.IO.Path.Combine(Folder, s.Config);
            try
            {
                string recipe = DemoTraining.RecipeOf(cfg);
                using var rec = RecipeRegistry.Create(recipe);
                // References cannot resolve before the run; the overrides are checked with placeholders of the right kind.
                ConfigLoader.Load(rec.DefaultConfig(), cfg, s.Set.Select(kv => $"{kv.Key}={(kv.Value is JsonValue v && v.TryGetValue<string>(out var str) && str.StartsWith('@') ? "\"/plan-input\"" : kv.Value?.ToJsonString() ?? "null")}"));
            }
            catch (Exception e) when (e is ConfigException or IOException or ArgumentException)
            {
                problems.Add($"step '{s.Id}': {e.Message}");
            }
        }
        return problems;
    }
}

/// <summary>One command of a <see cref="DemoPlan"/>.</summary>
/// <param name="Id">Unique name; the step writes into <c>OUT/ID</c>.</param>
/// <param name="Run">The run of the record it reproduces (e.g. <c>k7</c>).</param>
/// <param name="Tool"><c>mm-demo</c>, <c>mm-train</c> or <c>mm</c>.</param>
/// <param name="Command">Subcommand words (e.g. <c>train</c>, <c>make-data images</c>).</param>
/// <param name="Config">Config file relative to the plan's folder, passed as <c>--config</c>, or null.</param>
/// <param name="Set">Config overrides, passed as <c>--set KEY=JSON</c> in order.</param>
/// <param name="Args">Further arguments.</param>
/// <param name="Scale">The integers <c>--scale</c> multiplies.</param>
/// <param name="WallTimeSeconds">Recorded wall time of the original run, or null.</param>
/// <param name="Note">What the record says or lacks about this step.</param>
public sealed record PlanStep(string Id, string Run, string Tool, IReadOnlyList<string> Command, string? Config,
    IReadOnlyList<KeyValuePair<string, JsonNode?>> Set, IReadOnlyList<string> Args, IReadOnlyList<string> Scale, double? WallTimeSeconds, string? Note)
{
    /// <summary>Whether the step trains (its result is its newest checkpoint).</summary>
    public bool Trains => Tool is "mm-demo" && Command is ["train"] || Tool is "mm-train" && Command.Count == 1 && RecipeRegistry.Names.Contains(Command[0]);

    /// <summary>The steps whose outputs this one reads.</summary>
    public IReadOnlyList<string> Inputs => Set.Select(kv => kv.Value is JsonValue v && v.TryGetValue<string>(out var s) ? s : null)
        .Concat(Args).Where(a => a is not null && a.StartsWith('@')).Select(a => RefId(a!)).Distinct().ToList();

    /// <summary>The step id of a reference <c>@ID</c>, <c>@ID/PATH</c> or <c>@ID~N</c>.</summary>
    public static string RefId(string reference)
    {
        string r = reference[1..];
        int cut = r.IndexOfAny(new[] { '/', '~' });
        return cut < 0 ? r : r[..cut];
    }

    internal static PlanStep Parse(string path, JsonObject o)
    {
        string id = o["id"]?.GetValue<string>() ?? throw new ConfigException($"{path}: a step has no \"id\".");
        if (id.Length == 0 || !id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            throw new ConfigException($"{path}: step id '{id}' must be letters, digits, '-', '_' or '.'.");
        string where = $"{path}: step '{id}'";
        string tool = o["tool"]?.GetValue<string>() ?? throw new ConfigException($"{where}: no \"tool\".");
        if (!DemoPlan.Tools.Contains(tool)) throw new ConfigException($"{where}: tool '{tool}': expected one of {string.Join(", ", DemoPlan.Tools)}.");
        var command = Strings(o["command"], where, "command");
        if (command.Count == 0) throw new ConfigException($"{where}: \"command\" is empty.");
        var set = new List<KeyValuePair<string, JsonNode?>>();
        if (o["set"] is JsonObject so) foreach (var kv in so) set.Add(new(kv.Key, kv.Value?.DeepClone()));
        else if (o["set"] is not null) throw new ConfigException($"{where}: \"set\" must be an object of config keys.");
        var args = Strings(o["args"], where, "args");
        var scale = Strings(o["scale"], where, "scale");
        foreach (var entry in scale)
        {
            var (k, _) = ScaleEntry(entry, where);
            bool known = k == "@:" ? args.Any(a => a.StartsWith('@') && a.Contains(':'))
                : k.StartsWith("--", StringComparison.Ordinal) ? args.Contains(k.Split(':')[0]) : set.Any(kv => kv.Key == k);
            if (!known) throw new ConfigException($"{where}: \"scale\" names '{k}', which the step does not set.");
        }
        double? wall = o["wall_time_s"] is JsonValue w ? w.GetValue<double>() : null;
        if (wall is < 0) throw new ConfigException($"{where}: \"wall_time_s\" must be ≥ 0.");
        var step = new PlanStep(id, o["run"]?.GetValue<string>() ?? "", tool, command, o["config"]?.GetValue<string>(), set, args, scale, wall, o["note"]?.GetValue<string>());
        if (step.Trains && step.Config is null) throw new ConfigException($"{where}: a training step needs a \"config\".");
        return step;
    }

    static List<string> Strings(JsonNode? node, string where, string key) => node switch
    {
        null => new List<string>(),
        JsonArray a => a.Select(x => x is JsonValue v && v.TryGetValue<string>(out var s) ? s
            : x is JsonValue n ? n.ToJsonString() : throw new ConfigException($"{where}: \"{key}\" must hold strings or numbers.")).ToList(),
        _ => throw new ConfigException($"{where}: \"{key}\" must be an array."),
    };

    /// <summary>
    /// The command line of this step: subcommand, <c>--config</c>, <c>--set</c> overrides and arguments, references
    /// resolved by <paramref name="resolve"/> (one reference may become several arguments) and integers scaled by
    /// <paramref name="scale"/>.
    /// </summary>
    public IReadOnlyList<string> CommandLine(string planFolder, string outDir, double scale, Func<string, IReadOnlyList<string>> resolve)
    {
        var line = new List<string>(Command);
        if (Config is not null) { line.Add("--config"); line.Add(System.IO.Path.Combine(planFolder, Config)); }
        foreach (var (key, value) in Set)
        {
            JsonNode? v = value?.DeepClone();
            if (v is JsonValue sv && sv.TryGetValue<string>(out var s) && s.StartsWith('@')) v = JsonValue.Create(Single(resolve(s), s));
            else if (MinOf(key) is long min && v is JsonValue iv && iv.TryGetValue<long>(out var n)) v = JsonValue.Create(Scaled(n, scale, min));
            line.Add("--set");
            line.Add($"{key}={v?.ToJsonString() ?? "null"}");
        }
        for (int i = 0; i < Args.Count; i++)
        {
            string a = Args[i];
            if (a.StartsWith('@'))
            {
                var resolved = resolve(a).ToList();
                if (scale != 1 && MinOf("@:") is not null) resolved = resolved.Select(r => ScaleSlice(r, scale)).ToList();
                line.AddRange(resolved);
                continue;
            }
            a = a.Replace("{out}", outDir, StringComparison.Ordinal).Replace("{plan}", planFolder, StringComparison.Ordinal);
            if (i > 0 && scale != 1)
            {
                string opt = Args[i - 1];
                if (MinOf(opt) is long min && long.TryParse(a, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n)) a = Scaled(n, scale, min).ToString(CultureInfo.InvariantCulture);
                foreach (var (k, kmin) in Scale.Select(e => ScaleEntry(e, Id)).Where(e => e.Key.StartsWith(opt + ":", StringComparison.Ordinal)))
                {
                    var fields = a.Split(':');
                    int f = int.Parse(k[(opt.Length + 1)..], CultureInfo.InvariantCulture);
                    if (f < fields.Length && long.TryParse(fields[f], NumberStyles.Integer, CultureInfo.InvariantCulture, out var m))
                    {
                        fields[f] = Scaled(m, scale, kmin).ToString(CultureInfo.InvariantCulture);
                        a = string.Join(':', fields);
                    }
                }
            }
            line.Add(a);
        }
        return line;
    }

    // PATH:N or PATH:A-B (a manifest slice of mm-demo concat) with N, A and B scaled.
    static string ScaleSlice(string arg, double scale)
    {
        int colon = arg.LastIndexOf(':');
        if (colon <= 0) return arg;
        var nums = arg[(colon + 1)..].Split('-');
        if (!nums.All(x => long.TryParse(x, NumberStyles.None, CultureInfo.InvariantCulture, out _))) return arg;
        return arg[..colon] + ":" + string.Join('-', nums.Select(x => Scaled(long.Parse(x, CultureInfo.InvariantCulture), scale).ToString(CultureInfo.InvariantCulture)));
    }

    static string Single(IReadOnlyList<string> values, string reference) =>
        values.Count == 1 ? values[0] : throw new ConfigException($"reference '{reference}' in a config override must name one path, not {values.Count}.");

    /// <summary><paramref name="n"/> × <paramref name="scale"/>, rounded, at least <paramref name="min"/> but not above <paramref name="n"/> (0 stays 0).</summary>
    public static long Scaled(long n, double scale, long min = 1) =>
        n == 0 || scale == 1 ? n : Math.Min(n, Math.Max(min, (long)Math.Round(n * scale, MidpointRounding.AwayFromZero)));

    // A scale entry KEY or KEY>=MIN.
    static (string Key, long Min) ScaleEntry(string entry, string where)
    {
        int ge = entry.IndexOf(">=", StringComparison.Ordinal);
        if (ge < 0) return (entry, 1);
        return long.TryParse(entry[(ge + 2)..], NumberStyles.None, CultureInfo.InvariantCulture, out long min) && min >= 1 ? (entry[..ge], min)
            : throw new ConfigException($"{where}: scale entry '{entry}': expected KEY or KEY>=N with N ≥ 1.");
    }

    long? MinOf(string key) => Scale.Select(e => ScaleEntry(e, Id)).Where(e => e.Key == key).Select(e => (long?)e.Min).FirstOrDefault();
}

/// <summary>A model the plan ships: step <see cref="Step"/>'s result copied to <c>OUT/models/NAME</c>.</summary>
/// <param name="Name">Folder name under <c>OUT/models</c> (as under <c>assets/models/demo</c>).</param>
/// <param name="Step">The step whose result is the model.</param>
/// <param name="FilesFrom">A step whose result supplies the files the model's folder lacks (an averaged folder has only weights and config).</param>
/// <param name="Tokenizer"><c>@STEP/PATH</c> of the tokenizer file copied beside the model as <c>tokenizer.model</c>.</param>
public sealed record PlanOutput(string Name, string Step, string? FilesFrom, string? Tokenizer);

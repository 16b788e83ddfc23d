using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;

namespace Llama3.Multimodal.Demo;

/// <summary>How <see cref="PlanRunner"/> runs a plan.</summary>
public sealed record PlanRunOptions
{
    /// <summary>Run from this step on (earlier steps must be done).</summary>
    public string? From { get; init; }
    /// <summary>Run only this step (its inputs must be done).</summary>
    public string? Only { get; init; }
    /// <summary>Print the commands and the recorded wall time; run nothing.</summary>
    public bool DryRun { get; init; }
    /// <summary>Multiplies the integers each step lists under <c>scale</c> (step counts, data sizes); 1 = the plan as recorded.</summary>
    public double Scale { get; init; } = 1;
    /// <summary>libtorch threads of the training steps (null: the plan's <c>threads</c>).</summary>
    public int? Threads { get; init; }
}

/// <summary>
/// Runs a <see cref="DemoPlan"/> in order into an output folder: each step writes into <c>OUT/ID</c> and is marked done
/// there when it succeeds, so a rerun skips finished steps and a training step that stopped resumes from its newest
/// checkpoint. Finally the plan's outputs are copied to <c>OUT/models/NAME</c>.
/// </summary>
public sealed class PlanRunner
{

    readonly DemoPlan _plan;
    readonly string _out;
    readonly PlanRunOptions _opt;
    readonly Func<string, IReadOnlyList<string>, TextWriter, int> _exec;
    readonly TextWriter _log;

    /// <summary>
    /// A runner of <paramref name="plan"/> into <paramref name="outDir"/>; <paramref name="exec"/> runs one command
    /// (tool, arguments, writer for its output) and returns its exit code; progress goes to <paramref name="log"/>.
    /// </summary>
    public PlanRunner(DemoPlan plan, string outDir, PlanRunOptions options, Func<string, IReadOnlyList<string>, TextWriter, int> exec, TextWriter log)
    {
        _plan = plan; _out = Path.GetFullPath(outDir); _opt = options; _exec = exec; _log = log;
        if (options.Scale is <= 0 or > 1 || double.IsNaN(options.Scale)) throw new ConfigException($"--scale {options.Scale}: expected a factor in (0, 1].");
        if (options.From is { } f) plan.Step(f);
        if (options.Only is { } o) plan.Step(o);
        if (options.From is not null && options.Only is not null) throw new ConfigException("--from and --only: give one of them.");
    }

    /// <summary>The output folder of step <paramref name="id"/>.</summary>
    public string StepDir(string id) => Path.Combine(_out, id);

    /// <summary>Whether step <paramref name="id"/> has finished (<c>OUT/done/ID.json</c> exists, written when it succeeded).</summary>
    public bool IsDone(string id) => File.Exists(DoneMarker(id));

    string DoneMarker(string id) => Path.Combine(_out, "done", id + ".json");

    /// <summary>The log of step <paramref name="id"/>: its command line and console output (<c>OUT/logs/ID.log</c>).</summary>
    public string LogFile(string id) => Path.Combine(_out, "logs", id + ".log");

    /// <summary>The result of step <paramref name="id"/>: a training step's newest checkpoint, otherwise its folder.</summary>
    public string Result(string id)
    {
        var step = _plan.Step(id);
        if (!step.Trains) return StepDir(id);
        return Checkpoints(id).LastOrDefault() ?? (_opt.DryRun ? Path.Combine(StepDir(id), "checkpoints", "(newest)")
            : throw new ConfigException($"step '{id}' has no checkpoint in {Path.Combine(StepDir(id), "checkpoints")}."));
    }

    IReadOnlyList<string> Checkpoints(string id)
    {
        string root = Path.Combine(StepDir(id), "checkpoints");
        return Directory.Exists(root) ? new CheckpointStore(root, int.MaxValue).List() : Array.Empty<string>();
    }

    /// <summary>Resolves <c>@ID</c>, <c>@ID/PATH</c> and <c>@ID~N</c> (see <see cref="DemoPlan"/>).</summary>
    public IReadOnlyList<string> Resolve(string reference)
    {
        string id = PlanStep.RefId(reference);
        string rest = reference[(1 + id.Length)..];
        if (rest.Length == 0) return new[] { Result(id) };
        if (rest[0] == '/') return new[] { Path.Combine(StepDir(id), rest[1..]) };
        if (!int.TryParse(rest[1..], NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n < 1)
            throw new ConfigException($"reference '{reference}': expected @ID~N with N ≥ 1.");
        if (_opt.DryRun) return Enumerable.Range(0, n).Select(i => Path.Combine(StepDir(id), "checkpoints", $"(newest - {n - 1 - i})")).ToList();
        var all = Checkpoints(id);
        if (all.Count < n) throw new ConfigException($"reference '{reference}': step '{id}' kept {all.Count} checkpoints, fewer than {n}.");
        return all.Skip(all.Count - n).ToList();
    }

    /// <summary>The full command line of <paramref name="step"/> (its tool first).</summary>
    public IReadOnlyList<string> CommandLine(PlanStep step)
    {
        var line = step.CommandLine(_plan.Folder, StepDir(step.Id), _opt.Scale, Resolve).ToList();
        if (step.Trains && !line.Contains("--threads")) { line.Add("--threads"); line.Add((_opt.Threads ?? _plan.Threads).ToString(CultureInfo.InvariantCulture)); }
        return line;
    }

    /// <summary>Runs (or, with <see cref="PlanRunOptions.DryRun"/>, prints) the plan; returns 0 when every selected step succeeded.</summary>
    public int Run()
    {
        var steps = _plan.Steps.ToList();
        int first = _opt.From is { } f ? steps.FindIndex(s => s.Id == f) : 0;
        var selected = _opt.Only is { } only ? steps.Where(s => s.Id == only).ToList() : steps.Skip(first).ToList();
        var (recorded, unrecorded) = _plan.RecordedWallTime();
        _log.WriteLine($"plan {_plan.Path}: {steps.Count} steps, {_plan.Outputs.Count} outputs; recorded wall time {Hours(recorded)}" +
            (unrecorded.Count > 0 ? $" ({unrecorded.Count} steps without a recorded time)" : "") + (_opt.Scale != 1 ? $"; scaled by {_opt.Scale}" : ""));
        if (_opt.DryRun)
        {
            foreach (var s in selected)
                _log.WriteLine($"[{s.Id}] {s.Tool} {string.Join(' ', CommandLine(s).Select(Quote))}" + (s.WallTimeSeconds is { } w ? $"    # {Minutes(w)}" : "    # no recorded time"));
            _log.WriteLine($"recorded wall time of the selected steps: {Hours(selected.Sum(s => s.WallTimeSeconds ?? 0))}; of the plan: {Hours(recorded)}.");
            return 0;
        }
        Directory.CreateDirectory(Path.Combine(_out, "done"));
        var total = Stopwatch.StartNew();
        int ran = 0, skipped = 0, index = 0;
        foreach (var s in selected)
        {
            index++;
            string tag = $"[{index}/{selected.Count}] {s.Id}";
            if (IsDone(s.Id)) { skipped++; _log.WriteLine($"{tag}: done before, skipped"); continue; }
            foreach (var input in s.Inputs)
                if (!IsDone(input)) throw new ConfigException($"step '{s.Id}' needs step '{input}', which has not finished (run without --only/--from, or run '{input}' first).");
            string dir = StepDir(s.Id), logFile = LogFile(s.Id);
            // A training step that stopped resumes from its newest checkpoint; any other step starts again from nothing.
            if (!s.Trains && Directory.Exists(dir)) Directory.Delete(dir, true);
            Directory.CreateDirectory(dir);
            Directory.CreateDirectory(Path.GetDirectoryName(logFile)!);
            var line = CommandLine(s);
            _log.WriteLine($"{tag}: {s.Tool} {string.Join(' ', line.Select(Quote))}");
            var watch = Stopwatch.StartNew();
            int code;
            using (var stepLog = new StreamWriter(logFile, append: true))
            {
                stepLog.WriteLine($"$ {s.Tool} {string.Join(' ', line.Select(Quote))}");
                code = _exec(s.Tool, line, stepLog);
            }
            if (code != 0)
            {
                var tail = File.ReadLines(logFile).TakeLast(5);
                _log.WriteLine($"{tag}: failed with exit code {code} after {Minutes(watch.Elapsed.TotalSeconds)}; the end of {logFile}:");
                foreach (var l in tail) _log.WriteLine("  " + l);
                return code;
            }
            if (s.Trains && Checkpoints(s.Id).Count == 0) throw new ConfigException($"step '{s.Id}' trained but wrote no checkpoint in {dir}.");
            AtomicFile.WriteAllText(DoneMarker(s.Id), new JsonObject
            {
                ["seconds"] = Math.Round(watch.Elapsed.TotalSeconds, 1), ["scale"] = _opt.Scale, ["finished"] = DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture),
            }.ToJsonString());
            ran++;
            _log.WriteLine($"{tag}: done in {Minutes(watch.Elapsed.TotalSeconds)}" + (s.WallTimeSeconds is { } w ? $" (recorded: {Minutes(w)})" : ""));
        }
        if (_opt.Only is null)
            foreach (var o in _plan.Outputs) _log.WriteLine($"model '{o.Name}': {Export(o)}");
        _log.WriteLine($"summary: {ran} steps run, {skipped} done before, in {Minutes(total.Elapsed.TotalSeconds)}; models in {Path.Combine(_out, "models")}.");
        return 0;
    }

    /// <summary>
    /// Copies output <paramref name="o"/> to <c>OUT/models/NAME</c>: the model's files without optimizer state, the
    /// files it lacks from <see cref="PlanOutput.FilesFrom"/>, and the tokenizer as <c>tokenizer.model</c> (named so in
    /// <c>train_info.json</c>). Returns the folder.
    /// </summary>
    public string Export(PlanOutput o)
    {
        string dst = Path.Combine(_out, "models", o.Name);
        string tmp = dst + ".tmp";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        Directory.CreateDirectory(tmp);
        string[] skip = { "optimizer.safetensors", "trainer_state.json", "master.safetensors", "auxiliary.safetensors" };
        void CopyFrom(string dir, bool overwrite)
        {
            foreach (var f in Directory.GetFiles(dir))
            {
                string name = Path.GetFileName(f), to = Path.Combine(tmp, name);
                if (skip.Contains(name) || !overwrite && File.Exists(to)) continue;
                File.Copy(f, to, overwrite: true);
            }
        }
        CopyFrom(Result(o.Step), true);
        if (o.FilesFrom is { } from) CopyFrom(Result(from), false);
        if (o.Tokenizer is { } tok)
        {
            File.Copy(Resolve(tok)[0], Path.Combine(tmp, "tokenizer.model"), overwrite: true);
            string info = Path.Combine(tmp, MediaTokens.InfoFile);
            if (File.Exists(info) && JsonNode.Parse(File.ReadAllText(info)) is JsonObject j)
            {
                j["tokenizer"] = "tokenizer.model";
                AtomicFile.WriteAllText(info, j.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
            }
        }
        if (Directory.Exists(dst)) Directory.Delete(dst, true);
        Directory.Move(tmp, dst);
        return dst;
    }

    static string Quote(string a) => a.Length > 0 && a.All(c => char.IsAsciiLetterOrDigit(c) || "-_./:=,+@~()".Contains(c)) ? a : "'" + a.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    /// <summary>Seconds as minutes (or seconds under two minutes).</summary>
    public static string Minutes(double s) => s < 120 ? $"{s:F0} s" : $"{s / 60:F0} min";

    /// <summary>Seconds as hours and minutes.</summary>
    public static string Hours(double s) => $"{(int)(s / 3600)} h {(int)(s % 3600 / 60):D2} min";
}

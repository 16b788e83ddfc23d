using System.Text.Json.Nodes;
using Llama3.Multimodal.Server;
using Llama3.Multimodal.Speech;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Video;
using Llama3.Multimodal.Vision;

namespace Llama3.Multimodal.Demo.Tests;

/// <summary>The reproduction plan (<c>demo/plan.json</c>) and <c>mm-demo reproduce</c>.</summary>
public class ReproducePlanTests
{
    static string PlanPath => Path.Combine(TestRuns.RepoRoot(), "demo", "plan.json");

    static (int Code, string Out, string Err) Run(params string[] args) => MmDemoRunner.Run(args);

    [Fact]
    public void TheCheckedInPlanIsComplete()
    {
        var plan = DemoPlan.Load(PlanPath);                        // structure, and every input an earlier step
        Assert.Empty(plan.Validate());                             // configs exist and load with the overrides; a wall time or a note each
        Assert.Equal(new[] { "speech", "text-instruct", "video", "vision", "vision-instruct" }, plan.Outputs.Select(o => o.Name).Order());
        Assert.All(plan.Steps.Where(s => s.Trains), s =>
        {
            Assert.True(File.Exists(Path.Combine(plan.Folder, s.Config!)), s.Id);
            // every path a training run reads is set by the plan, never left to the config's folder-relative defaults
            foreach (var key in new[] { "tokenizer", "model.init_from", "data.train", "data.eval", "optim.total_steps" })
                Assert.True(s.Set.Any(kv => kv.Key == key), $"{s.Id} does not set {key}");
        });
        // the shipped lineage as recorded: the final vision weights are k7's averaged model averaged with its last checkpoint
        Assert.Equal(new[] { "@vision-k7-avg", "@vision-k7" }, plan.Step("vision-final").Args.Where(a => a.StartsWith('@')));
        Assert.Equal("@vision-f2", plan.Step("video-g1").Set.Single(kv => kv.Key == "model.init_from").Value!.GetValue<string>());
        var (seconds, _) = plan.RecordedWallTime();
        Assert.InRange(seconds / 3600, 10, 40);

        var dry = Run("reproduce", PlanPath, "--dry-run", "--out", TestRuns.TempDir());
        Assert.True(dry.Code == 0, dry.Err);
        Assert.Contains($"recorded wall time {PlanRunner.Hours(seconds)}", dry.Out);
        Assert.Contains("[vision-k7] mm-demo train --config ", dry.Out);
    }

    [Fact]
    public void ABadPlanIsRejectedWithTheStepNamed()
    {
        string dir = TestRuns.TempDir(), path = Path.Combine(dir, "plan.json");
        // steps written with ' for " (a plan file is JSON)
        void Write(string steps) => File.WriteAllText(path, "{\"format\": 1, \"steps\": [" + steps.Replace('\'', '"') + "]}");
        Write("{'id': 'a', 'tool': 'mm-demo', 'command': ['make-data', 'text'], 'args': ['--out', '{out}'], 'note': 'n'}," +
              "{'id': 'b', 'tool': 'mm-train', 'command': ['average'], 'args': ['--out', '{out}', '@c'], 'note': 'n'}");
        Assert.Contains("'b' refers to '@c'", Assert.Throws<ConfigException>(() => DemoPlan.Load(path)).Message);
        Write("{'id': 'a', 'tool': 'mm-demo', 'command': ['train'], 'config': 'missing.json', 'set': {'optim.total_steps': 2}, 'scale': ['optim.total_steps'], 'wall_time_s': 1}," +
              "{'id': 'b', 'tool': 'mm-demo', 'command': ['make-data', 'text'], 'args': ['--out', '{out}']}");
        var problems = DemoPlan.Load(path).Validate();
        Assert.Contains(problems, p => p.StartsWith("step 'a'", StringComparison.Ordinal) && p.Contains("missing.json", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("step 'b'", StringComparison.Ordinal) && p.Contains("note", StringComparison.Ordinal));
        Write("{'id': 'a', 'tool': 'mm-demo', 'command': ['make-data', 'text'], 'args': ['--out', '{out}'], 'scale': ['--count'], 'note': 'n'}");
        Assert.Contains("'--count'", Assert.Throws<ConfigException>(() => DemoPlan.Load(path)).Message);
    }

    [Fact]
    public void TheWholePlanRunsScaledDownAndEveryStepLeavesALoadableModel()
    {
        string outDir = TestRuns.TempDir();
        var run = Run("reproduce", PlanPath, "--out", outDir, "--scale", "0.0005", "--threads", "2");
        Assert.True(run.Code == 0, run.Out + run.Err);
        var plan = DemoPlan.Load(PlanPath);
        Assert.Contains($"summary: {plan.Steps.Count} steps run, 0 done before", run.Out);
        var runner = new PlanRunner(plan, outDir, new PlanRunOptions(), (_, _, _) => 1, TextWriter.Null);
        foreach (var step in plan.Steps.Where(s => s.Trains || s.Tool == "mm-train" && s.Command[0] is "average" or "grow-vision"))
        {
            // a checkpoint names its tokenizer in train_info.json; the loaders read a tokenizer.model beside the weights
            string dir = runner.Result(step.Id);
            if (!File.Exists(Path.Combine(dir, "tokenizer.model"))
                && step.Set.FirstOrDefault(kv => kv.Key == "tokenizer").Value?.GetValue<string>() is { } tok && tok.StartsWith('@'))
            {
                string copy = TestRuns.TempDir();
                foreach (var f in Directory.GetFiles(dir)) File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
                File.Copy(runner.Resolve(tok)[0], Path.Combine(copy, "tokenizer.model"), overwrite: true);   // vision-sft checkpoints hold one already
                dir = copy;
            }
            AssertLoads(dir);
        }
        foreach (var o in plan.Outputs)
        {
            string dir = Path.Combine(outDir, "models", o.Name);
            AssertLoads(dir);
            Assert.True(File.Exists(Path.Combine(dir, "tokenizer.model")), o.Name);
            // a multimodal model names its tokenizer in train_info.json; a text model (text-instruct) has none and reads the file beside it
            if (ServedModel.Detect(dir) != ServedModelKind.Text)
                Assert.Equal("tokenizer.model", JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "train_info.json")))!["tokenizer"]!.GetValue<string>());
            Assert.False(File.Exists(Path.Combine(dir, "optimizer.safetensors")));
        }
        using (var vlm = VisionLanguageModel.FromPretrained(Path.Combine(outDir, "models", "vision")))
            Assert.NotNull(vlm.Caption(Path.Combine(TestRuns.RepoRoot(), "assets", "demo", "images", "000002.png"), options: new GenerationOptions { MaxNewTokens = 4 }));

        // Rerun: every step is done and skipped; --only reruns nothing that is done either.
        var again = Run("reproduce", PlanPath, "--out", outDir, "--scale", "0.0005");
        Assert.True(again.Code == 0, again.Out + again.Err);
        Assert.Contains($"summary: 0 steps run, {plan.Steps.Count} done before", again.Out);
    }

    static void AssertLoads(string dir)
    {
        if (!File.Exists(Path.Combine(dir, "config.json")))
        {
            // a BEST-RQ checkpoint holds the speech encoder alone, which speech-stage2 reads by key
            using var reader = CheckpointReader.Open(dir);
            Assert.Contains(reader.Keys, k => k.StartsWith("speech_model.encoder.", StringComparison.Ordinal));
            return;
        }
        IDisposable model = ServedModel.Detect(dir) switch
        {
            ServedModelKind.Text => LlamaForCausalLM.FromPretrained(dir),
            ServedModelKind.Vision => VisionLanguageModel.FromPretrained(dir),
            ServedModelKind.Video => VideoLanguageModel.FromPretrained(dir),
            _ => SpeechLanguageModel.FromPretrained(dir),
        };
        model.Dispose();
    }
}

using Llama3.Multimodal.Text;
using Llama3.Multimodal.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training.Tests;

public class TrainerTests
{
    [Fact]
    public void AccumulatingMicroBatchesEqualsOneBigBatch()
    {
        // 4 micro-batches of 1 row against 1 micro-batch of 4 rows: the packer yields the same rows in the same order.
        using var a = new Trainer(new TextPretrainRecipe(), TestRuns.Config("text-pretrain", "batch.micro=1", "batch.global=128", "data.shuffle=false"), TestRuns.TempDir(), TestRuns.Quiet);
        using var b = new Trainer(new TextPretrainRecipe(), TestRuns.Config("text-pretrain", "batch.micro=4", "batch.global=128", "data.shuffle=false"), TestRuns.TempDir(), TestRuns.Quiet);
        using var sa = a.Recipe.OpenData(false, DataCursor.Start);
        using var sb = b.Recipe.OpenData(false, DataCursor.Start);
        Assert.Equal(4, BatchPlan.Accumulation(a.Recipe.Config, 128, 32));
        Assert.Equal(1, BatchPlan.Accumulation(b.Recipe.Config, 128, 32));
        var ra = a.TrainStep(sa, 4, 32);
        var rb = b.TrainStep(sb, 1, 32);
        Assert.Equal(rb.Loss, ra.Loss, 5);
        Assert.Equal(rb.GradNorm, ra.GradNorm, 4);
        var ga = a.Recipe.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!);
        foreach (var (name, p) in b.Recipe.Model.named_parameters())
        {
            double diff = (p.grad! - ga[name]).abs().max().item<float>();
            double scale = p.grad!.abs().max().item<float>();
            Assert.True(diff <= 1e-5 * Math.Max(1, scale) + 1e-7, $"{name}: max diff {diff} (scale {scale})");
        }
    }

    sealed class RecordingProgress : ITrainingProgress
    {
        public readonly List<string> Events = new();
        public void Start(long startStep, long totalSteps) => Events.Add($"start {startStep} {totalSteps}");
        public void Report(TrainProgress p) => Events.Add($"step {p.Step}/{p.TotalSteps} log={p.IsLogStep} finite={double.IsFinite(p.Loss)}");
        public void Message(string text) => Events.Add("message " + text);
        public void Finish() => Events.Add("finish");
    }

    [Fact]
    public void ProgressGoesThroughTheReporterInterface()
    {
        var rec = new RecordingProgress();
        var sets = new[] { "optim.total_steps=3", "optim.warmup_steps=1", "train.save_every=0", "train.log_every=2", "batch.global=64" };
        using (var t = new Trainer(new TextPretrainRecipe(), TestRuns.Config("text-pretrain", sets), TestRuns.TempDir(), TestRuns.Quiet with { Progress = rec }))
            t.Run(resume: true);
        Assert.Equal("start 0 3", rec.Events[0]);
        Assert.StartsWith("message no checkpoint in", rec.Events[1]);
        Assert.Equal(new[] { "step 1/3 log=False finite=True", "step 2/3 log=True finite=True", "step 3/3 log=True finite=True" },
            rec.Events.Where(e => e.StartsWith("step", StringComparison.Ordinal)));
        Assert.Equal("finish", rec.Events[^1]);
        var text = new StringWriter();
        var line = new TrainProgress { Step = 2, TotalSteps = 3, Loss = 1.5, LearningRate = 1e-3, TokensPerSecond = 10, Eta = TimeSpan.FromSeconds(62), IsLogStep = true };
        new TextTrainingProgress(text).Report(line);
        new TextTrainingProgress(text).Report(line with { IsLogStep = false });
        Assert.Equal("step 2/3  loss 1.5000  lr 1.00E-003  10 tok/s  ETA 00:01:02" + Environment.NewLine, text.ToString());
        // The library reports; rendering a console bar is the CLI's business.
        Assert.DoesNotContain(typeof(Trainer).Assembly.GetReferencedAssemblies(), a => a.Name!.StartsWith("Spectre", StringComparison.Ordinal));
    }

    [Fact]
    public void ResumeIsBitExact()
    {
        string[] sets = { "optim.total_steps=6", "optim.warmup_steps=2", "train.save_every=0", "batch.global=128" };
        string full = TestRuns.TempDir(), split = TestRuns.TempDir();
        Dictionary<string, float[]> wFull, mFull;
        using (var t = new Trainer(new TextPretrainRecipe(), TestRuns.Config("text-pretrain", sets), full, TestRuns.Quiet))
        {
            t.Run();
            wFull = TestRuns.Weights(t.Recipe.Model);
            mFull = t.Optimizer.StateTensors().ToDictionary(kv => kv.Key, kv => kv.Value.data<float>().ToArray());
        }
        using (var t = new Trainer(new TextPretrainRecipe(), TestRuns.Config("text-pretrain", sets.Append("train.max_steps=3").ToArray()), split, TestRuns.Quiet))
            Assert.Equal(3, t.Run().Steps);
        using (var t = new Trainer(new TextPretrainRecipe(), TestRuns.Config("text-pretrain", sets), split, TestRuns.Quiet))
        {
            var r = t.Run(resume: true);
            Assert.Equal(6, r.Steps);
            Assert.Equal(3, r.History.Count);
            var w = TestRuns.Weights(t.Recipe.Model);
            foreach (var (k, v) in wFull) Assert.True(v.AsSpan().SequenceEqual(w[k]), $"weight {k} differs after resume");
            var m = t.Optimizer.StateTensors().ToDictionary(kv => kv.Key, kv => kv.Value.data<float>().ToArray());
            Assert.Equal(mFull.Count, m.Count);
            foreach (var (k, v) in mFull) Assert.True(v.AsSpan().SequenceEqual(m[k]), $"moment {k} differs after resume");
        }
        Assert.Equal(Enumerable.Range(1, 6).Select(i => (long)i),
            File.ReadLines(Path.Combine(split, "metrics.jsonl")).Select(l => System.Text.Json.Nodes.JsonNode.Parse(l)!["step"]!.GetValue<long>()));
    }

    [Fact]
    public void FrozenParametersStayBitIdenticalAndHaveNoOptimizerState()
    {
        var cfg = TestRuns.Config("text-pretrain", "train.freeze=[\"embed_tokens\",\"model.layers.0\"]", "optim.total_steps=3", "optim.warmup_steps=1", "train.save_every=0");
        using var t = new Trainer(new TextPretrainRecipe(), cfg, TestRuns.TempDir(), TestRuns.Quiet);
        var before = TestRuns.Weights(t.Recipe.Model);
        t.Run();
        var after = TestRuns.Weights(t.Recipe.Model);
        var state = t.Optimizer.StateNames.ToHashSet();
        foreach (var (name, w) in before)
        {
            bool frozen = name.StartsWith("model.embed_tokens.") || name.StartsWith("model.layers.0.");
            if (frozen)
            {
                Assert.True(w.AsSpan().SequenceEqual(after[name]), $"frozen {name} changed");
                Assert.DoesNotContain(name, state);
                Assert.DoesNotContain(name, t.TrainableNames);
            }
            else
            {
                Assert.False(w.AsSpan().SequenceEqual(after[name]), $"trainable {name} did not change");
                Assert.Contains(name, state);
            }
        }
        var bad = TestRuns.Config("text-pretrain", "train.freeze=[\"vision_model\"]");
        Assert.Contains("vision_model", Assert.Throws<ConfigException>(() => new Trainer(new TextPretrainRecipe(), bad, TestRuns.TempDir(), TestRuns.Quiet)).Message);
    }

    [Fact]
    public void TinyTextPretrainLossFallsAndWritesEveryOutput()
    {
        string dir = TestRuns.TempDir();
        var cfg = TestRuns.Config("text-pretrain", "optim.total_steps=40", "optim.warmup_steps=3", "optim.lr=0.01", "optim.min_lr=0.001",
            "train.save_every=20", "train.eval_every=20", "train.eval_batches=2", "train.average_last=2");
        using var t = new Trainer(new TextPretrainRecipe(), cfg, dir, TestRuns.Quiet with { TensorBoard = true, Plot = true });
        var r = t.Run();
        double first = r.History.Take(3).Average(h => h.Loss), last = r.History.TakeLast(3).Average(h => h.Loss);
        Assert.True(last < 0.7 * first, $"loss {first:F3} → {last:F3} did not fall by 30%");
        Assert.Equal(2, r.Eval.Count);
        Assert.True(r.Eval[1].Loss < r.Eval[0].Loss);
        Assert.Equal(40, File.ReadLines(Path.Combine(dir, "metrics.jsonl")).Count(l => l.Contains("\"loss\"")));
        Assert.True(new FileInfo(Path.Combine(dir, "curves.png")).Length > 1000);
        Assert.Single(Directory.GetFiles(Path.Combine(dir, "tensorboard"), "events.out.tfevents.*"));
        // The checkpoint is a plain HF folder: it loads as a LlamaForCausalLM.
        using var m = LlamaForCausalLM.FromPretrained(r.LastCheckpoint!);
        Assert.Equal(264, m.Config.VocabSize);
        // The averaged model is the mean of the last two checkpoints.
        var ck = Directory.GetDirectories(Path.Combine(dir, "checkpoints")).OrderBy(d => d).ToList();
        Assert.Equal(2, ck.Count);
        using var a = SafeTensorsFile.Open(Path.Combine(ck[0], "model.safetensors"));
        using var b = SafeTensorsFile.Open(Path.Combine(ck[1], "model.safetensors"));
        using var avg = SafeTensorsFile.Open(Path.Combine(dir, "averaged", "model.safetensors"));
        foreach (var k in a.Entries.Keys)
        {
            using var ta = a.Read(k); using var tb = b.Read(k); using var tv = avg.Read(k);
            Assert.True(tv.allclose((ta + tb) / 2, 1e-6, 1e-7), k);
        }
        Assert.True(File.Exists(Path.Combine(dir, "averaged", "config.json")));
    }

    [Fact]
    public void InterruptedCheckpointWriteLeavesThePreviousOneLoadable()
    {
        string dir = TestRuns.TempDir();
        var cfg = TestRuns.Config("text-pretrain", "optim.total_steps=4", "optim.warmup_steps=1", "train.save_every=2");
        int saves = 0;
        var opts = TestRuns.Quiet with
        {
            BeforeCheckpointCommit = tmp =>
            {
                if (++saves < 2) return;
                // Simulate a crash midway: a half-written weights file, then the process dies before the rename.
                File.WriteAllBytes(Path.Combine(tmp, "model.safetensors"), new byte[] { 1, 2, 3 });
                throw new IOException("simulated crash during checkpoint write");
            },
        };
        using (var t = new Trainer(new TextPretrainRecipe(), cfg, dir, opts))
            Assert.Throws<IOException>(() => t.Run());
        var store = new CheckpointStore(Path.Combine(dir, "checkpoints"), 3);
        Assert.EndsWith(CheckpointStore.NameOf(2), store.Latest());
        Assert.Empty(Directory.GetDirectories(store.Root, ".step-*"));
        using var m = LlamaForCausalLM.FromPretrained(store.Latest()!);
        using var t2 = new Trainer(new TextPretrainRecipe(), cfg, dir, TestRuns.Quiet);
        Assert.Equal(4, t2.Run(resume: true).Steps);
    }

    [Fact]
    public void AveragingRejectsMismatchedCheckpoints()
    {
        string a = TestRuns.TempDir(), b = TestRuns.TempDir();
        using (var x = torch.ones(2, 2)) SafeTensorsWriter.Save(Path.Combine(a, "model.safetensors"), new[] { new KeyValuePair<string, Tensor>("w", x) });
        using (var y = torch.ones(3, 2)) SafeTensorsWriter.Save(Path.Combine(b, "model.safetensors"), new[] { new KeyValuePair<string, Tensor>("w", y) });
        var e = Assert.Throws<CheckpointFormatException>(() => CheckpointAverager.Average(new[] { a, b }, TestRuns.TempDir()));
        Assert.Contains("'w'", e.Message);
        Assert.Contains(b, e.Message);
    }
}

public class MixedPrecisionTests
{
    [Fact]
    public void Bf16ComputeCopiesFollowF32MasterWeights()
    {
        string dir = TestRuns.TempDir();
        var cfg = TestRuns.Config("text-pretrain", "train.dtype=bf16", "optim.total_steps=4", "optim.warmup_steps=1", "optim.lr=0.01", "train.save_every=0");
        using var t = new Trainer(new TextPretrainRecipe(), cfg, dir, TestRuns.Quiet);
        var before = t.Recipe.Model.named_parameters().ToDictionary(p => p.name, p => p.parameter.to_type(ScalarType.Float32).clone());
        var r = t.Run();
        Assert.All(r.History, h => Assert.True(double.IsFinite(h.Loss)));
        Assert.True(r.History[^1].Loss < r.History[0].Loss);
        var moments = t.Optimizer.StateTensors().ToList();
        Assert.All(moments, kv => Assert.Equal(ScalarType.Float32, kv.Value.dtype));
        using var master = SafeTensorsFile.Open(Path.Combine(r.LastCheckpoint!, "master.safetensors"));
        foreach (var (name, p) in t.Recipe.Model.named_parameters())
        {
            Assert.Equal(ScalarType.BFloat16, p.dtype);
            using var m = master.Read(name);
            Assert.Equal(ScalarType.Float32, m.dtype);
            Assert.True(p.eq(m.to_type(ScalarType.BFloat16)).all().item<bool>(), $"{name}: compute copy is not the rounded master");
            Assert.False(before[name].eq(m).all().item<bool>(), $"{name}: master did not change");
        }
    }
}

public class LayerPlacementTrainingTests
{
    [Fact]
    public void TrainingWithTheLayersSplitOverDevicesEqualsOneDevice()
    {
        // On this machine every range is on the CPU; on a GPU box the same path runs with cuda:0,cuda:1.
        var sets = new[] { "optim.total_steps=3", "optim.warmup_steps=1", "optim.lr=0.01", "train.save_every=0" };
        using var one = new Trainer(new TextPretrainRecipe(), TestRuns.Config("text-pretrain", sets), TestRuns.TempDir(), TestRuns.Quiet);
        using var split = new Trainer(new TextPretrainRecipe(), TestRuns.Config("text-pretrain", sets.Append("train.devices=\"cpu,cpu\"").ToArray()), TestRuns.TempDir(), TestRuns.Quiet);
        var lm = ((TextRecipe)split.Recipe).Lm;
        Assert.All(lm.model.layers, b => Assert.NotNull(b.PlacedOn));
        var a = one.Run(); var b = split.Run();
        Assert.Equal(a.History.Select(h => h.Loss), b.History.Select(h => h.Loss));
        var wa = TestRuns.Weights(one.Recipe.Model);
        foreach (var (name, w) in TestRuns.Weights(split.Recipe.Model)) Assert.Equal(wa[name], w);
    }

    [Fact]
    public void BadDeviceListsAndNonTextRecipesAreRefusedByName()
    {
        var e = Assert.Throws<ConfigException>(() => TestRuns.Config("text-pretrain", "train.devices=\"tpu:0\""));
        Assert.Contains("train.devices", e.Message);
        var v = Assert.Throws<ConfigException>(() => ConfigLoader.Load(DemoConfigs.For("vision-stage1"), null, new[] { "train.devices=\"auto\"" }));
        Assert.Contains("train.devices", v.Message);
    }
}

namespace Llama3.Multimodal.Demo.Tests;

/// <summary><c>mm-demo</c> from the command line: data with its configs, a training run with a demo loss, evaluation.</summary>
public class MmDemoCliTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => MmDemoRunner.Run(args);

    [Fact]
    public void MakeDataImagesTakesSceneKinds()
    {
        string data = TestRuns.TempDir();
        var mk = Run("make-data", "images", "--out", data, "--seed", "3", "--count", "6", "--eval-count", "2", "--kinds", "number");
        Assert.True(mk.Code == 0, mk.Err);
        Assert.All(File.ReadLines(Path.Combine(data, "images", "manifest.jsonl")), l => Assert.Contains("\"the number ", l));
        Assert.False(Directory.Exists(Path.Combine(data, "images-heldout")));
        var bad = Run("make-data", "images", "--out", TestRuns.TempDir(), "--count", "2", "--kinds", "single,circles");
        Assert.Equal(2, bad.Code);
        Assert.Contains("\"circles\"", bad.Err);
    }

    [Fact]
    public void TrainsWithADemoLossByNameAndScoresWithTheGrammar()
    {
        string data = TestRuns.TempDir(), outDir = TestRuns.TempDir();
        var mk = Run("make-data", "images", "--out", data, "--seed", "4", "--count", "4", "--eval-count", "2", "--kinds", "word,number", "--size", "112");
        Assert.True(mk.Code == 0, mk.Err);
        var t = Run("train", "--config", Path.Combine(data, "vision-stage1.json"), "--out", outDir, "--set", "model.init_from=null", "--set", "optim.total_steps=2",
            "--set", "optim.warmup_steps=0", "--set", "batch.global=2", "--set", "batch.micro=2", "--set", "train.eval_every=0",
            "--set", "vision.auxiliary_losses=[{\"name\":\"glyph_linear\",\"weight\":1}]");
        Assert.True(t.Code == 0, t.Err);
        Assert.Contains("done: 2 steps", t.Out);
        Assert.Contains(File.ReadLines(Path.Combine(outDir, "metrics.jsonl")), l => l.Contains("\"glyph_loss\"", StringComparison.Ordinal));
        var ev = Run("eval", "caption", "--model", Path.Combine(outDir, "checkpoints", CheckpointStore.NameOf(2)), "--data", Path.Combine(data, "images-eval", "manifest.jsonl"), "--limit", "1");
        Assert.True(ev.Code == 0, ev.Err);
        Assert.Contains("\"per_kind\"", ev.Out);
        // mm-train does not know the demo's losses, and says how to get them
        var lib = Tools.MmTrain.Program.Main(new[] { "vision-stage1", "--config", Path.Combine(data, "vision-stage1.json"), "--print-config", "--set", "vision.auxiliary_losses=[{\"name\":\"nope\",\"weight\":1}]" });
        Assert.Equal(0, lib);                                                    // the name is checked when the recipe starts
        var unknown = Run("train", "--config", Path.Combine(data, "vision-stage1.json"), "--out", TestRuns.TempDir(), "--set", "model.init_from=null",
            "--set", "vision.auxiliary_losses=[{\"name\":\"nope\",\"weight\":1}]");
        Assert.Equal(2, unknown.Code);
        Assert.Contains("'nope'", unknown.Err);
        Assert.Contains("glyph_linear", unknown.Err);
    }
}

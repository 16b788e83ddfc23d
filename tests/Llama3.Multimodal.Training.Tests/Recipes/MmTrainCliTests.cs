using System.Text.Json.Nodes;

namespace Llama3.Multimodal.Training.Tests.Recipes;

/// <summary><c>mm-train</c> end to end: a recipe by name with --config/--set/--out/--resume, then <c>eval</c> printing JSON.</summary>
public class MmTrainCliTests
{
    static (int Code, string Out, string Err) Run(params string[] args) =>
        Llama3.Multimodal.Tests.Shared.ConsoleCapture.Run(Tools.MmTrain.Program.Main, args);

    [Fact]
    public void TrainsResumesAndEvaluatesAVisionModelFromTheCommandLine()
    {
        string data = TestRuns.TempDir(), outDir = TestRuns.TempDir();
        Llama3.Multimodal.Demo.DemoData.Write("images", data, 9, count: 4, evalCount: 2);
        string cfg = Path.Combine(data, "vision-stage1.json");
        string[] common = { "vision-stage1", "--config", cfg, "--out", outDir, "--set", "model.init_from=null", "--set", "optim.total_steps=2",
            "--set", "optim.warmup_steps=0", "--set", "batch.global=2", "--set", "batch.micro=2", "--set", "train.eval_every=0" };
        var t1 = Run(common.Append("--max-steps").Append("1").ToArray());
        Assert.True(t1.Code == 0, t1.Err);
        var t2 = Run(common.Append("--resume").ToArray());
        Assert.True(t2.Code == 0, t2.Err);
        Assert.Contains("done: 2 steps", t2.Out);
        string model = Path.Combine(outDir, "checkpoints", CheckpointStore.NameOf(2));
        var ev = Run("eval", "caption", "--model", model, "--data", Path.Combine(data, "images-eval", "manifest.jsonl"), "--limit", "1", "--max-new-tokens", "4");
        Assert.True(ev.Code == 0, ev.Err);
        var json = JsonNode.Parse(ev.Out)!.AsObject();
        Assert.Equal("caption", json["task"]!.GetValue<string>());
        Assert.InRange(json["exact_match"]!.GetValue<double>(), 0, 1);

        var bad = Run("eval", "asr", "--model", data, "--data", Path.Combine(data, "images-eval", "manifest.jsonl"));
        Assert.Equal(2, bad.Code);
        Assert.Contains(MediaTokens.InfoFile, bad.Err);
    }

    [Fact]
    public void EvalTableShowsEachInputBesideItsPredictionAndTheScores()
    {
        string root = TestRuns.RepoRoot();
        var ev = Run("eval", "caption", "--model", Path.Combine(root, "assets", "models", "demo", "vision"),
            "--data", Path.Combine(root, "assets", "demo", "images", "manifest.jsonl"), "--limit", "3", "--table");
        Assert.True(ev.Code == 0, ev.Err);
        var lines = ev.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToList();
        Assert.Equal(5, lines.Count);                                                    // header, 3 records, scores
        Assert.StartsWith("  input", lines[0]);
        Assert.Matches(@"^✓ 000002\.png +two large red diamonds +\(same\)$", lines[3]);
        Assert.Equal("scores: 3 records · exact match 100.0 %", lines[4]);
        Assert.DoesNotContain("{", ev.Out);
    }

    [Fact]
    public void BpeVocabularyDrivesASpeechSftRun()
    {
        string dir = TestRuns.TempDir(), tok = Path.Combine(dir, "tokenizer.model");
        var b = Run("bpe", "--out", tok, "--vocab-size", "300", MediaTestData.SpeechManifest, MediaTestData.ImageManifest);
        Assert.True(b.Code == 0, b.Err);
        var cfg = MediaTestData.Config("speech-stage2", 1, $"tokenizer=\"{tok}\"", "data.seq_len=400", "model.max_position_embeddings=512");
        using var t = new Trainer(RecipeRegistry.Create("speech-stage2"), cfg, TestRuns.TempDir(), TestRuns.Quiet);
        var r = t.Run();
        Assert.True(double.IsFinite(r.History[0].Loss));
        var recipe = (SpeechSftRecipe)t.Recipe;
        Assert.True(recipe.Tokenizer.VocabSize > 300 && recipe.Tokenizer.VocabSize < 1000, $"vocab {recipe.Tokenizer.VocabSize}");
        Assert.Equal(recipe.Tokenizer.VocabSize, recipe.Slm.language_model.Config.VocabSize);
    }


    [Fact]
    public void GrowVisionKeepsTheShippedModelsCaptionsAndARecipeContinuesIt()
    {
        string root = TestRuns.RepoRoot(), shipped = Path.Combine(root, "assets", "models", "demo", "vision");
        string manifest = Path.Combine(root, "assets", "demo", "images", "manifest.jsonl");
        string grown = Path.Combine(TestRuns.TempDir(), "grown");
        var g = Run("grow-vision", "--model", shipped, "--out", grown, "--width-factor", "2", "--mlp-factor", "2", "--add-global-layers", "1", "--add-cross-attention-layers", "1", "--noise", "0");
        Assert.True(g.Code == 0, g.Err);
        Assert.Contains("parameters", g.Out);
        var src = JsonNode.Parse(File.ReadAllText(Path.Combine(shipped, "config.json")))!;
        var dst = JsonNode.Parse(File.ReadAllText(Path.Combine(grown, "config.json")))!;
        int V(JsonNode c, string section, string key) => c[section]![key]!.GetValue<int>();
        Assert.Equal(2 * V(src, "vision_config", "hidden_size"), V(dst, "vision_config", "hidden_size"));
        Assert.Equal(2 * V(src, "vision_config", "attention_heads"), V(dst, "vision_config", "attention_heads"));
        Assert.Equal(4 * V(src, "vision_config", "intermediate_size"), V(dst, "vision_config", "intermediate_size"));
        Assert.Equal(V(src, "vision_config", "num_global_layers") + 1, V(dst, "vision_config", "num_global_layers"));
        int layers = V(src, "text_config", "num_hidden_layers");
        Assert.Equal(layers + 1, V(dst, "text_config", "num_hidden_layers"));
        var cross = src["text_config"]!["cross_attention_layers"]!.AsArray().Select(x => x!.GetValue<int>()).Append(layers);
        Assert.Equal(cross, dst["text_config"]!["cross_attention_layers"]!.AsArray().Select(x => x!.GetValue<int>()));
        Assert.True(File.Exists(Path.Combine(grown, "tokenizer.model")) && File.Exists(Path.Combine(grown, "train_info.json")) && File.Exists(Path.Combine(grown, "growth.json")));
        // the same function: the grown model captions the shipped images exactly as the shipped one does
        var before = MultimodalEval.Caption(shipped, manifest, examples: -1);
        var after = MultimodalEval.Caption(grown, manifest, examples: -1);
        Assert.Equal(before["examples"]!.ToJsonString(), after["examples"]!.ToJsonString());

        // a vision recipe continues it through model.init_from
        string outDir = TestRuns.TempDir();
        var t = Run("vision-stage2", "--config", Path.Combine(root, "demo", "configs", "vision-stage2.json"), "--out", outDir,
            "--set", $"model.init_from={JsonValue.Create(grown).ToJsonString()}", "--set", $"tokenizer={JsonValue.Create(Path.Combine(shipped, "tokenizer.model")).ToJsonString()}",
            "--set", $"data.train={JsonValue.Create(manifest).ToJsonString()}", "--set", $"data.eval={JsonValue.Create(manifest).ToJsonString()}",
            "--set", "optim.total_steps=2", "--set", "optim.warmup_steps=0", "--set", "batch.global=2", "--set", "batch.micro=2", "--set", "train.eval_every=0");
        Assert.True(t.Code == 0, t.Err);
        var trained = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "checkpoints", CheckpointStore.NameOf(2), "config.json")))!;
        Assert.Equal(V(dst, "vision_config", "hidden_size"), V(trained, "vision_config", "hidden_size"));
        Assert.Equal(layers + 1, V(trained, "text_config", "num_hidden_layers"));

        // refusals: a non-empty output folder is left as it was; a bad factor is named
        File.WriteAllText(Path.Combine(outDir, "keep.txt"), "mine");
        var busy = Run("grow-vision", "--model", shipped, "--out", outDir);
        Assert.Equal(2, busy.Code);
        Assert.Contains("not empty", busy.Err);
        Assert.Equal("mine", File.ReadAllText(Path.Combine(outDir, "keep.txt")));
        var bad = Run("grow-vision", "--model", shipped, "--out", Path.Combine(TestRuns.TempDir(), "x"), "--width-factor", "0");
        Assert.Equal(2, bad.Code);
        Assert.Contains("width factor 0", bad.Err);
        var missing = Run("grow-vision", "--model", Path.Combine(TestRuns.TempDir(), "none"), "--out", Path.Combine(TestRuns.TempDir(), "y"));
        Assert.Equal(2, missing.Code);
        Assert.Contains("not found", missing.Err);
    }
}

using System.Text.Json.Nodes;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training.Tests.Recipes;

/// <summary>
/// <c>vision-reward</c>, <c>vision-dpo</c> and rejection sampling over images: the reward model learns to rank chosen above
/// rejected, the language reward model's layers and head come along frozen, the DPO reference moves by the exact EMA and
/// resumes exactly, formatting tokens are masked, and rejection sampling writes usable vision-sft data.
/// </summary>
public class VisionPreferenceTests
{
    static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    static readonly Lazy<(string Checkpoint, TrainResult Run)> Reward = new(() =>
    {
        string dir = TestRuns.TempDir();
        TrainResult r;
        using (var t = new Trainer(RecipeRegistry.Create("vision-reward"), VisionPostTrainingData.Config("vision-reward", 10, "optim.lr=0.003"), dir, TestRuns.Quiet)) r = t.Run();
        return (Path.Combine(dir, "checkpoints", CheckpointStore.NameOf(10)), r);
    });

    [Fact]
    public void TheRewardModelRanksChosenAboveRejectedAfterAFewSteps()
    {
        var (ck, run) = Reward.Value;
        Assert.True(run.History[^1].Loss < run.History[0].Loss, $"loss {run.History[0].Loss:F4} → {run.History[^1].Loss:F4}");
        using var rm = VisionRewardModel.FromPretrained(ck);
        Assert.Equal("vision-reward", MediaTokens.ReadInfo(ck).Recipe);
        var tok = ByteTokenizer.Instance;
        var pre = VisionRecipe.Preprocessor(rm.Vlm.Config.Vision, 1);
        foreach (var p in JsonlManifest.ReadVisionPreferences(VisionPostTrainingData.Pairs, false, out _))
        {
            var prompt = VisionChatTokens.Prompt(tok, p.Prompt, VisionPostTrainingData.ImageToken);
            double Score(string response)
            {
                var ids = prompt.Concat(VisionChatTokens.Response(tok, response)).Select(i => (long)i).ToArray();
                var img = VisionRecipe.ProcessImage(pre, rm.Vlm.Preprocessor, ImageLoader.Load(p.Images[0]));
                using var batch = rm.Vlm.Preprocessor.Pack(new[] { (IReadOnlyList<ProcessedImage>)new[] { img } });
                img.Dispose();
                using var x = torch.tensor(ids, new long[] { 1, ids.Length });
                using var last = torch.tensor(new long[] { ids.Length - 1 });
                using var r = rm.Rewards(x, batch, last);
                return r.item<float>();
            }
            Assert.True(Score(p.Chosen) > Score(p.Rejected), $"{p.Chosen}: chosen not above rejected");
        }
        // The swapped language model stayed frozen: it is still the instruct model's.
        using var instruct = LlamaForCausalLM.FromPretrained(VisionPostTrainingData.InstructModel);
        Assert.True(Same(instruct.model.norm.weight, rm.language_model.model.norm.weight));
    }

    [Fact]
    public void AVisionRewardModelContinuesFromItsOwnOutputHeadIncluded()
    {
        var (ck, _) = Reward.Value;
        using var t = new Trainer(RecipeRegistry.Create("vision-reward"), VisionPostTrainingData.Config("vision-reward", 2, $"model.init_from=\"{ck}\""), TestRuns.TempDir(), TestRuns.Quiet);
        var rm = ((VisionRewardRecipe)t.Recipe).Rm;
        using (var saved = VisionRewardModel.FromPretrained(ck))
        {
            var stored = saved.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            var names = rm.named_parameters().Select(p => p.name).ToList();
            Assert.Equal(stored.Keys.OrderBy(k => k, StringComparer.Ordinal), names.OrderBy(k => k, StringComparer.Ordinal));
            foreach (var (name, p) in rm.named_parameters()) Assert.True(Same(stored[name], p), $"{name} is not the saved reward model's");
        }
        Assert.Contains("score.weight", t.TrainableNames);
        using var head = rm.score.weight!.detach().clone();
        t.Run();
        Assert.False(Same(head, rm.score.weight!), "the head did not train");
    }

    [Fact]
    public void TheLanguageRewardModelBringsItsLayersAndFrozenHead()
    {
        string dir = Path.Combine(TestRuns.TempDir(), "text-rm");
        Directory.CreateDirectory(dir);
        var lm = LlamaForCausalLM.FromPretrained(VisionPostTrainingData.InstructModel);
        using (var textRm = new RewardModel(lm, 5))
        {
            var cfg = LlamaConfigJson.ToHuggingFace(textRm.Config);
            cfg["architectures"] = new JsonArray("LlamaForSequenceClassification");
            cfg["num_labels"] = 1;
            File.WriteAllText(Path.Combine(dir, "config.json"), cfg.ToJsonString());
            SafeTensorsWriter.Save(Path.Combine(dir, "model.safetensors"), textRm.named_parameters().Select(p => new KeyValuePair<string, Tensor>(p.name, p.parameter)));
        }
        using var t = new Trainer(RecipeRegistry.Create("vision-reward"), VisionPostTrainingData.Config("vision-reward", 1, $"vision.language_model_from=\"{dir}\""), TestRuns.TempDir(), TestRuns.Quiet);
        var rm = ((VisionRewardRecipe)t.Recipe).Rm;
        using var reader = CheckpointReader.Open(dir);
        using var score = reader.Read("score.weight");
        Assert.True(Same(score, rm.score.weight));
        Assert.DoesNotContain("score.weight", t.TrainableNames);
        Assert.Contains(t.TrainableNames, n => n.StartsWith("vision_model.", StringComparison.Ordinal));
        t.Run();
        Assert.True(Same(score, rm.score.weight), "the language reward model's head changed");
    }

    [Fact]
    public void DpoMasksTheFormattingTokens()
    {
        using var t = new Trainer(RecipeRegistry.Create("vision-dpo"), VisionPostTrainingData.Config("vision-dpo", 1), TestRuns.TempDir(), TestRuns.Quiet);
        var recipe = (VisionDpoRecipe)t.Recipe;
        var rec = JsonlManifest.ReadVisionPreferences(VisionPostTrainingData.Pairs, false, out _)[0];
        var item = recipe.Prepare(rec);
        foreach (var img in item.Images) img.Dispose();
        // Only the response text is scored (the edited response stands in for the chosen one): no header, <|eot_id|> or <|image|>.
        var scored = item.ChosenLabels.Where(l => l != -100).ToArray();
        Assert.Equal(System.Text.Encoding.UTF8.GetBytes(rec.Edited!).Select(b => (long)b), scored);
        Assert.Equal(System.Text.Encoding.UTF8.GetBytes(rec.Rejected).Select(b => (long)b), item.RejectedLabels.Where(l => l != -100));
        Assert.Contains((long)VisionPostTrainingData.ImageToken, item.ChosenIds);
    }

    [Fact]
    public void BadPreferenceRecordsNameTheirLine()
    {
        string img = JsonlManifest.ReadVisionPreferences(VisionPostTrainingData.Pairs, false, out _)[0].Images[0];
        string path = Path.Combine(TestRuns.TempDir(), "p.jsonl");
        string Error(string line)
        {
            File.WriteAllText(path, line + "\n");
            var e = Assert.Throws<DataFormatException>(() => JsonlManifest.ReadVisionPreferences(path, false, out _));
            Assert.Contains("p.jsonl:1", e.Message);
            return e.Message;
        }
        Assert.Contains("the prompt holds 2 image part(s) but \"images\" lists 1", Error($"{{\"images\": [\"{img}\"], \"prompt\": \"<|image|><|image|>Compare.\", \"chosen\": \"a\", \"rejected\": \"b\"}}"));
        Assert.Contains("the prompt messages hold 0 image part(s) but \"images\" lists 1",
            Error($"{{\"images\": [\"{img}\"], \"prompt\": [{{\"role\": \"user\", \"content\": [{{\"type\": \"text\", \"text\": \"Hi\"}}]}}], \"chosen\": \"a\", \"rejected\": \"b\"}}"));
        Assert.Contains("\"chosen\" and \"rejected\" are identical", Error($"{{\"images\": [\"{img}\"], \"prompt\": \"x\", \"chosen\": \"a\", \"rejected\": \"a\"}}"));
        Assert.Contains("unknown field \"image\"", Error($"{{\"image\": \"{img}\", \"prompt\": \"x\", \"chosen\": \"a\", \"rejected\": \"b\"}}"));
        // A string prompt without a placeholder gets the images first, as the chat client does.
        File.WriteAllText(path, $"{{\"images\": [\"{img}\"], \"prompt\": \"What colour?\", \"chosen\": \"a\", \"rejected\": \"b\"}}\n");
        Assert.Equal("<|image|>What colour?", JsonlManifest.ReadVisionPreferences(path, false, out _)[0].Prompt[0].Content);
    }

    static TrainConfig Dpo(long steps, params string[] extra) =>
        VisionPostTrainingData.Config("vision-dpo", steps, extra.Concat(new[] { "loss.reference_ema=0.75", "loss.reference_update_every=2", "optim.lr=0.003" }).ToArray());

    [Fact]
    public void DpoReferenceMovesByTheExactMovingAverageEveryKStepsAndResumesExactly()
    {
        // Two steps: the reference is the starting policy after step 1 and 0.75·ref + 0.25·policy after step 2.
        string dir = TestRuns.TempDir();
        Dictionary<string, float[]> start, policy, reference;
        using (var t = new Trainer(RecipeRegistry.Create("vision-dpo"), Dpo(2), dir, TestRuns.Quiet))
        {
            var r = (VisionDpoRecipe)t.Recipe;
            start = TestRuns.Weights(r.Vlm);
            Assert.Equal(start.Keys, TestRuns.Weights(r.Reference).Keys);
            Assert.All(TestRuns.Weights(r.Reference), kv => Assert.Equal(start[kv.Key], kv.Value));
            t.Run();
            policy = TestRuns.Weights(r.Vlm);
            reference = TestRuns.Weights(r.Reference);
        }
        int moved = 0;
        foreach (var (name, w) in reference)
        {
            var expected = new float[w.Length];
            for (int i = 0; i < w.Length; i++)
            {
                float keep = start[name][i] * 0.75f, take = policy[name][i] * 0.25f;
                expected[i] = keep + take;
            }
            Assert.True(expected.AsSpan().SequenceEqual(w), $"{name}: reference is not the moving average");
            if (!start[name].AsSpan().SequenceEqual(w)) moved++;
        }
        Assert.True(moved > 0);
        Assert.True(File.Exists(Path.Combine(dir, "checkpoints", CheckpointStore.NameOf(2), VisionDpoRecipe.ReferenceFile)));

        // Four steps straight equal two steps + resume + two more, reference included.
        string full = TestRuns.TempDir(), split = TestRuns.TempDir();
        Dictionary<string, float[]> a, b;
        using (var t = new Trainer(RecipeRegistry.Create("vision-dpo"), Dpo(4), full, TestRuns.Quiet)) { t.Run(); a = TestRuns.Weights(((VisionDpoRecipe)t.Recipe).Reference); }
        using (var t = new Trainer(RecipeRegistry.Create("vision-dpo"), Dpo(4, "train.max_steps=3"), split, TestRuns.Quiet)) t.Run();
        using (var t = new Trainer(RecipeRegistry.Create("vision-dpo"), Dpo(4), split, TestRuns.Quiet)) { t.Run(resume: true); b = TestRuns.Weights(((VisionDpoRecipe)t.Recipe).Reference); }
        foreach (var (name, w) in a) Assert.True(w.AsSpan().SequenceEqual(b[name]), $"{name}: reference differs after resume");
    }

    [Fact]
    public void RejectionSamplingOverImagesWritesTheBestResponseAsVisionSftData()
    {
        var (rewardDir, _) = Reward.Value;
        // A vision-sft policy (one step; its folder names the byte tokenizer in train_info.json).
        string sftDir = TestRuns.TempDir();
        using (var t = new Trainer(RecipeRegistry.Create("vision-sft"), VisionPostTrainingData.Config("vision-sft", 1), sftDir, TestRuns.Quiet)) t.Run();
        string policy = Path.Combine(sftDir, "checkpoints", CheckpointStore.NameOf(1));
        string outDir = TestRuns.TempDir(), outFile = Path.Combine(outDir, "best.jsonl");
        var (code, stdout, stderr) = Llama3.Multimodal.Tests.Shared.ConsoleCapture.Run(Tools.MmTrain.Program.Main, "rejection-sample", "--policy", policy, "--reward", rewardDir,
            "--prompts", VisionPostTrainingData.Prompts, "--out", outFile, "--k", "3", "--temperature", "1.0", "--max-new-tokens", "6", "--seed", "5");
        Assert.True(code == 0, stderr);
        Assert.Contains("wrote 2 image dialogues", stdout);
        // The output is vision-sft data; each line keeps the best of the K candidates the sampler draws for that prompt.
        var dialogs = JsonlManifest.ReadVisionDialogs(outFile, false, out _);
        Assert.Equal(2, dialogs.Count);
        using var pm = VisionLanguageModel.FromPretrained(policy);
        using var rm = VisionRewardModel.FromPretrained(rewardDir);
        var sampler = new VisionRejectionSampler(pm, rm, ByteTokenizer.Instance, 1);
        var lines = File.ReadAllLines(outFile).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        for (int i = 0; i < 2; i++)
        {
            var prompt = dialogs[i].Messages.Take(dialogs[i].Messages.Count - 1).ToList();
            var candidates = sampler.Sample(prompt, dialogs[i].Images.Select(p => ImageLoader.Load(p)).ToList(), 3, 1.0, 6, 5 + i);
            var best = candidates.MaxBy(c => c.Reward)!;
            Assert.Equal(best.Text, dialogs[i].Messages[^1].Content);
            Assert.Equal(best.Reward, lines[i]["reward"]!.GetValue<double>(), 5);
            Assert.Equal("<|image|>Describe the image.", dialogs[i].Messages[0].Content);
        }
    }
}

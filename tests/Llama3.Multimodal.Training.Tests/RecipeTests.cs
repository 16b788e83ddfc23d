using Llama3.Multimodal.Text;
using Llama3.Multimodal.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training.Tests;

public class RecipeTests
{
    [Fact]
    public void SftLossIgnoresPromptTokens()
    {
        using var r = new SftRecipe();
        r.Setup(TestRuns.Config("sft", "data.seq_len=256"), CPU, ScalarType.Float32);
        var tok = r.Tokenizer;
        var dialog = new DialogRecord(new[] { new ChatMessage("system", "be brief."), new ChatMessage("user", "what color is the fox?"), new ChatMessage("assistant", "the fox is orange.") });
        var (ids, labels) = r.Encode(dialog);
        // Targets are exactly the assistant content and its <|eot_id|>.
        var targets = labels.Where(l => l != -100).Select(l => (int)l).ToList();
        var expect = tok.Encode("the fox is orange."); expect.Add(tok.EotId);
        Assert.Equal(expect, targets);
        using var logits = torch.randn(1, ids.Length, tok.VocabSize, generator: new Generator(5));
        using var y = torch.tensor(labels, new long[] { 1, labels.Length });
        double loss = PreferenceLosses.CrossEntropySum(logits, y).item<float>();
        // Perturb every position whose next token is prompt: the loss does not move.
        using var p = logits.clone();
        for (int t = 0; t < labels.Length; t++) if (labels[t] == -100) p[0, t].add_(torch.randn(tok.VocabSize) * 5);
        Assert.Equal(loss, PreferenceLosses.CrossEntropySum(p, y).item<float>(), 4);
        // Perturbing one response position does move it (so the check above can fail).
        int first = Array.FindIndex(labels, l => l != -100);
        p[0, first].add_(torch.randn(tok.VocabSize) * 5);
        Assert.NotEqual(loss, PreferenceLosses.CrossEntropySum(p, y).item<float>(), 2);
    }

    [Fact]
    public void DpoLossIsLogTwoWhenPolicyEqualsReference()
    {
        using var r = new DpoRecipe();
        r.Setup(TestRuns.Config("dpo", "loss.nll_weight=0"), CPU, ScalarType.Float32);
        using var src = r.OpenData(false, DataCursor.Start);
        using var b = src.Next(64);
        var o = r.Loss(b);
        Assert.Equal(Math.Log(2), o.Sum.item<float>() / b.LossElements, 5);
        Assert.Equal(Math.Log(2), o.Metrics!["dpo"] / b.LossElements, 5);
    }

    [Fact]
    public void DpoMasksHeaderAndEndOfTurnTokens()
    {
        using var r = new DpoRecipe();
        r.Setup(TestRuns.Config("dpo"), CPU, ScalarType.Float32);
        var pair = r.Encode(new PreferenceRecord(new[] { new ChatMessage("user", "q?") }, "yes.", "no.", null));
        var tok = r.Tokenizer;
        Assert.Equal(tok.Encode("yes."), pair.ChosenLabels.Where(l => l != -100).Select(l => (int)l));
        Assert.Equal(tok.Encode("no."), pair.RejectedLabels.Where(l => l != -100).Select(l => (int)l));
        Assert.Equal(tok.EotId, pair.ChosenIds[^1]);
    }

    [Fact]
    public void PreferenceLossesMatchHandComputedValues()
    {
        static double Ls(double x) => Math.Log(1 + Math.Exp(-x));   // −log σ(x)
        using var pc = torch.tensor(new float[] { -10f, -3f }); using var pr = torch.tensor(new float[] { -12f, -2f });
        using var rc = torch.tensor(new float[] { -11f, -3f }); using var rr = torch.tensor(new float[] { -11f, -2.5f });
        var d = PreferenceLosses.Dpo(pc, pr, rc, rr, 0.1).data<float>().ToArray();
        Assert.Equal(Ls(0.1 * ((-10 + 11) - (-12 + 11))), d[0], 5);     // β·(1 − (−1)) = 0.2
        Assert.Equal(Ls(0.1 * ((-3 + 3) - (-2 + 2.5))), d[1], 5);       // β·(0 − 0.5) = −0.05
        using var better = torch.tensor(new float[] { 2f, 0f }); using var worse = torch.tensor(new float[] { 1f, 3f });
        var p = PreferenceLosses.PairwiseRanking(better, worse).data<float>().ToArray();
        Assert.Equal(Ls(1), p[0], 5);
        Assert.Equal(Ls(-3), p[1], 5);
    }

    [Fact]
    public void RewardModelThreeWayLossMatchesRewards()
    {
        using var r = new RewardModelRecipe();
        r.Setup(TestRuns.Config("reward-model"), CPU, ScalarType.Float32);
        var items = new[]
        {
            new PreferenceRecord(new[] { new ChatMessage("user", "what color is the cat?") }, "the cat is black.", "the cat is red.", "the cat is black, of course."),
            new PreferenceRecord(new[] { new ChatMessage("user", "what color is the dog?") }, "the dog is brown.", "the dog is blue.", null),
        };
        // Score each row alone and combine by hand.
        double Reward(long[] row)
        {
            using var ids = torch.tensor(row, new long[] { 1, row.Length });
            using var last = torch.tensor(new long[] { row.Length - 1 });
            using var v = r.Rm.Rewards(ids, last);
            return v.item<float>();
        }
        var e0 = r.Encode(items[0]); var e1 = r.Encode(items[1]);
        double c0 = Reward(e0.Chosen), r0 = Reward(e0.Rejected), ed0 = Reward(e0.Edited!), c1 = Reward(e1.Chosen), r1 = Reward(e1.Rejected);
        static double Ls(double x) => Math.Log(1 + Math.Exp(-x));
        double expect = Ls(c0 - r0) + Ls(c1 - r1) + Ls(ed0 - c0) + Ls(ed0 - r0);
        var collate = typeof(RewardModelRecipe).GetMethod("Collate", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!;
        using var b = (MicroBatch)collate.Invoke(r, new object[] { new List<RewardModelRecipe.Item> { e0, e1 }, 64, DataCursor.Start })!;
        Assert.Equal(expect, r.Loss(b).Sum.item<float>(), 4);
    }

    [Theory]
    [InlineData("sft", 30, 0.7)]
    [InlineData("dpo", 12, 0.95)]
    [InlineData("reward-model", 25, 0.9)]
    public void RecipeLossFallsOnTinyData(string recipe, int steps, double ratio)
    {
        var cfg = TestRuns.Config(recipe, $"optim.total_steps={steps}", "optim.warmup_steps=2", "optim.schedule=constant", "optim.lr=0.003", "train.save_every=0");
        using var t = new Trainer(RecipeRegistry.Create(recipe), cfg, TestRuns.TempDir(), TestRuns.Quiet);
        var r = t.Run();
        double first = r.History.Take(3).Average(h => h.Loss), last = r.History.TakeLast(3).Average(h => h.Loss);
        Assert.True(last < ratio * first, $"{recipe}: loss {first:F4} → {last:F4}");
    }
}

public class RejectionSamplingTests
{
    [Fact]
    public void KeepsTheHighestRewardOfKSamplesAsAnSftDialog()
    {
        using var policyRecipe = new SftRecipe();
        policyRecipe.Setup(TestRuns.Config("sft"), CPU, ScalarType.Float32);
        using var rmRecipe = new RewardModelRecipe();
        rmRecipe.Setup(TestRuns.Config("reward-model"), CPU, ScalarType.Float32);
        string dir = TestRuns.TempDir();
        rmRecipe.SaveModel(Path.Combine(dir, "rm"));
        using var rm = RewardModel.FromPretrained(Path.Combine(dir, "rm"));
        var sampler = new RejectionSampler(policyRecipe.Lm, rm, policyRecipe.Tokenizer);
        string prompts = Path.Combine(dir, "prompts.jsonl"), outPath = Path.Combine(dir, "best.jsonl");
        File.WriteAllLines(prompts, new[] { """{"prompt":"what color is the cat?"}""", """{"prompt":[{"role":"user","content":"what color is the owl?"}],"chosen":"x"}""" });
        Assert.Equal(2, sampler.Run(prompts, outPath, 4, 1.0, 12, 99));
        var dialogs = JsonlManifest.ReadDialogs(outPath, false, out _);
        Assert.Equal(2, dialogs.Count);
        var again = sampler.Sample(new[] { new ChatMessage("user", "what color is the cat?") }, 4, 1.0, 12, 99);
        Assert.Equal(4, again.Count);
        Assert.True(again.Select(c => c.Text).Distinct().Count() > 1, "temperature sampling should give different candidates");
        var best = again.MaxBy(c => c.Reward)!;
        Assert.Equal(best.Text, dialogs[0].Messages[^1].Content);
        Assert.Equal("assistant", dialogs[0].Messages[^1].Role);
        Assert.Equal("what color is the owl?", dialogs[1].Messages[0].Content);
    }
}

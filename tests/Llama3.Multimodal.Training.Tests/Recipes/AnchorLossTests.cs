using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training.Tests.Recipes;

/// <summary>
/// The vision recipes' anchor loss (<c>vision.anchor_loss_weight</c>): which images it holds (records with <c>"anchor": true</c>), its value against a frozen
/// copy of the starting model, what it trains, and that the copy never changes.
/// </summary>
public class AnchorLossTests
{
    static readonly Lazy<string> Mixed = AuxiliaryLosses.Images(14, "overlap", "single", "number");

    /// <summary>A starting vision model: two steps of a fresh run, its checkpoint folder.</summary>
    static readonly Lazy<string> Start = new(() =>
    {
        string dir = TestRuns.TempDir();
        using (var t = new Trainer(RecipeRegistry.Create("vision-stage1"), AuxiliaryLosses.Config(Mixed.Value, new[] { "optim.total_steps=2", "train.save_every=2" }), dir, TestRuns.Quiet))
            t.Run();
        return Path.Combine(dir, "checkpoints", CheckpointStore.NameOf(2));
    });

    /// <summary>Another vision model of the same shape (two steps of a run with another seed), and one whose decoder is
    /// wider, so that its cross-attention source has another width.</summary>
    static readonly Lazy<string> Other = new(() => TwoSteps("seed=77"));
    static readonly Lazy<string> Wider = new(() => TwoSteps("model.hidden_size=128"));

    static string TwoSteps(string set)
    {
        string dir = TestRuns.TempDir();
        using (var t = new Trainer(RecipeRegistry.Create("vision-stage1"), AuxiliaryLosses.Config(Mixed.Value, new[] { "optim.total_steps=2", "train.save_every=2", set }), dir, TestRuns.Quiet))
            t.Run();
        return Path.Combine(dir, "checkpoints", CheckpointStore.NameOf(2));
    }

    static TrainConfig Cfg(double weight, params string[] extra) =>
        AuxiliaryLosses.Config(Mixed.Value, extra.Prepend($"model.init_from=\"{Start.Value}\"").Prepend($"vision.anchor_loss_weight={weight}"));

    [Fact]
    public void HoldsExactlyTheRecordsWhoseManifestLineOptsIn()
    {
        // The mixed set's records, every other one opted in (true), the rest opted out (false) or silent (no field).
        string dir = TestRuns.TempDir(), manifest = Path.Combine(dir, "manifest.jsonl");
        File.WriteAllLines(manifest, File.ReadLines(Mixed.Value).Select((l, i) =>
        {
            var o = (System.Text.Json.Nodes.JsonObject)System.Text.Json.Nodes.JsonNode.Parse(l)!;
            o["image"] = Path.Combine(Path.GetDirectoryName(Mixed.Value)!, (string)o["image"]!);
            o.Remove("anchor");
            if (i % 2 == 0) o["anchor"] = true;
            else if (i % 4 == 1) o["anchor"] = false;
            return o.ToJsonString();
        }));
        var records = JsonlManifest.ReadImageCaptions(manifest, false, out _);
        Assert.Equal(Enumerable.Range(0, records.Count).Select(i => i % 2 == 0), records.Select(r => r.Anchor));
        using var t = new Trainer(RecipeRegistry.Create("vision-stage1"), Cfg(0.5, $"data.train=\"{manifest}\""), dir, TestRuns.Quiet);
        using var source = ((VisionRecipe)t.Recipe).OpenData(false, DataCursor.Start);
        using var batch = source.Next(96);
        Assert.Equal(records.Take(4).Select(r => r.Anchor ? 1f : 0f), batch["anchor_mask"].data<float>().ToArray());
        // A manifest with a malformed field is refused by name.
        string bad = Path.Combine(TestRuns.TempDir(), "bad.jsonl");
        File.WriteAllText(bad, "{\"image\": \"x.png\", \"caption\": \"c\", \"anchor\": \"yes\"}\n");
        var e = Assert.Throws<DataFormatException>(() => JsonlManifest.ReadImageCaptions(bad, false, out _));
        Assert.Contains("anchor", e.Message);
    }

    [Fact]
    public void LossIsCaptionPlusWeightedRelativeDistanceOfSceneImagesToTheStartingModel()
    {
        using var t = new Trainer(RecipeRegistry.Create("vision-stage1"), Cfg(0.5), TestRuns.TempDir(), TestRuns.Quiet);
        var recipe = (VisionRecipe)t.Recipe;
        var anchor = recipe.AnchorModel!;
        Assert.DoesNotContain(t.TrainableNames, n => n.StartsWith("anchor", StringComparison.Ordinal));
        using var source = recipe.OpenData(false, DataCursor.Start);
        using var batch = source.Next(96);
        var mask = batch["anchor_mask"].data<float>().ToArray();
        Assert.Contains(1f, mask);
        using var images = batch.Images();

        // Where the run starts, it is the starting model: nothing to pay.
        using (no_grad())
            Assert.Equal(0, recipe.AnchorLoss(recipe.Vlm.EncodeImages(images), images, batch).Sum.item<float>(), 6);

        using (no_grad())
        {
            var w = recipe.Vlm.vision_model.patch_embedding.weight!;
            using var scale = 0.05.ToScalar();
            w.add_(randn_like(w).mul_(scale));
        }
        var states = recipe.Vlm.EncodeImages(images);
        using (no_grad())
        {
            var reference = anchor.EncodeImages(images);
            double expected = 0;
            for (int b = 0; b < mask.Length; b++)
                if (mask[b] == 1f)
                    expected += states[b].sub(reference[b]).square().sum().item<float>() / reference[b].square().sum().item<float>();
            Assert.True(expected > 1e-6, $"perturbed source moved only {expected}");
            var (sum, count) = recipe.AnchorLoss(states, images, batch);
            Assert.Equal(expected, sum.item<float>(), 1e-4 * expected);
            Assert.Equal((long)mask.Sum(), count);

            double caption = PreferenceLosses.CrossEntropySum(recipe.Vlm.Forward(batch["input_ids"], images), batch["labels"]).item<float>();
            var output = recipe.Loss(batch);
            Assert.Equal(caption + 0.5 * expected, output.Sum.item<float>(), 1e-3 * Math.Abs(output.Sum.item<float>()));
            Assert.Equal(expected / count * batch.LossElements, output.Metrics!["anchor_loss"], 1e-3 * output.Metrics["anchor_loss"]);
        }

        AuxiliaryLosses.AssertTrainsHeadAndImageSideOnly(recipe, recipe.AnchorLoss(states, images, batch).Sum, null);
        Assert.All(anchor.parameters(), p => Assert.Null(p.grad));

        AuxiliaryLosses.AssertEvaluationBatchesLack(recipe, "anchor_mask");
    }

    [Fact]
    public void TrainingLogsItAndLeavesTheStartingModelAsItWas()
    {
        string dir = TestRuns.TempDir();
        using (var t = new Trainer(RecipeRegistry.Create("vision-stage1"), Cfg(1.0, "optim.total_steps=4", "train.log_every=1"), dir, TestRuns.Quiet))
        {
            var anchor = ((VisionRecipe)t.Recipe).AnchorModel!;
            var before = anchor.named_parameters().ToDictionary(p => p.name, p => p.parameter.clone());
            t.Run();
            foreach (var (name, p) in anchor.named_parameters())
                Assert.True(p.equal(before[name]).all().item<bool>(), $"anchor parameter {name} changed");
            // The run itself moved away from it.
            var moved = ((VisionRecipe)t.Recipe).Vlm.vision_model.patch_embedding.weight!;
            Assert.False(moved.equal(before["vision_model.patch_embedding.weight"]).all().item<bool>());
        }
        var logged = File.ReadLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.TryGetProperty("anchor_loss", out _)).ToList();
        Assert.NotEmpty(logged);
        Assert.All(logged, e => Assert.True(e.GetProperty("anchor_loss").GetDouble() >= 0));
    }

    [Fact]
    public void AnchorFromNamesTheModelToHoldToInsteadOfTheStartingOne()
    {
        using var t = new Trainer(RecipeRegistry.Create("vision-stage1"), Cfg(1.0, $"vision.anchor_from=\"{Other.Value}\""), TestRuns.TempDir(), TestRuns.Quiet);
        var recipe = (VisionRecipe)t.Recipe;
        using var other = Vision.VisionLanguageModel.FromPretrained(Other.Value, CPU, ScalarType.Float32);
        var expected = other.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in recipe.AnchorModel!.named_parameters())
            Assert.True(p.equal(expected[name]).all().item<bool>(), $"anchor parameter {name} is not vision.anchor_from's");
        // The run starts from model.init_from, so where it starts it already pays for the distance to the other model.
        Assert.False(recipe.Vlm.vision_model.patch_embedding.weight!.equal(expected["vision_model.patch_embedding.weight"]).all().item<bool>());
        using var source = recipe.OpenData(false, DataCursor.Start);
        using var batch = source.Next(96);
        using var images = batch.Images();
        using (no_grad())
        {
            using var states = recipe.Vlm.EncodeImages(images);
            var (sum, count) = recipe.AnchorLoss(states, images, batch);
            Assert.True(count > 0);
            Assert.True(sum.item<float>() > 1e-6f);
        }
    }

    [Fact]
    public void BadAnchorFromIsRefusedByName()
    {
        var alone = Assert.Throws<Text.ConfigException>(() => Cfg(0, $"vision.anchor_from=\"{Other.Value}\""));
        Assert.Contains("vision.anchor_from", alone.Message);
        Assert.Contains("vision.anchor_loss_weight", alone.Message);

        string notVision = TestRuns.TempDir();
        var missing = Assert.Throws<Text.ConfigException>(() =>
            new Trainer(RecipeRegistry.Create("vision-stage1"), Cfg(1.0, $"vision.anchor_from=\"{notVision}\""), TestRuns.TempDir(), TestRuns.Quiet));
        Assert.Contains("vision.anchor_from", missing.Message);
        Assert.Contains(notVision, missing.Message);

        var wider = Assert.Throws<Text.ConfigException>(() =>
            new Trainer(RecipeRegistry.Create("vision-stage1"), Cfg(1.0, $"vision.anchor_from=\"{Wider.Value}\""), TestRuns.TempDir(), TestRuns.Quiet));
        Assert.Contains("vision.anchor_from", wider.Message);
        Assert.Contains("text_config.hidden_size 128", wider.Message);
    }

    [Fact]
    public void BadSettingsAreRefusedByName()
    {
        var e = Assert.Throws<Text.ConfigException>(() => Cfg(-1));
        Assert.Contains("vision.anchor_loss_weight", e.Message);
        var cfg = AuxiliaryLosses.Config(Mixed.Value, new[] { "vision.anchor_loss_weight=1", "model.init_from=null" });
        var missing = Assert.Throws<Text.ConfigException>(() => new Trainer(RecipeRegistry.Create("vision-stage1"), cfg, TestRuns.TempDir(), TestRuns.Quiet));
        Assert.Contains("vision.anchor_loss_weight", missing.Message);
        Assert.Contains("model.init_from", missing.Message);
    }
}

using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Demo.Tests;

/// <summary>
/// The demo's patch-shape loss (<c>vision.auxiliary_losses</c> <c>shape</c>): which shape each patch is labelled with, how the
/// loss adds to the caption loss, what it trains, and that its head stays out of the saved model.
/// </summary>
public class ShapeLossTests
{
    static readonly Lazy<string> Scenes = AuxiliaryLosses.Images(12, "overlap", "single", "number");

    static TrainConfig Cfg(double weight, params string[] extra) =>
        AuxiliaryLosses.Config(Scenes.Value, extra.Prepend(AuxiliaryLosses.Set((ShapeLoss.Name, weight))));

    static ShapeLoss Shape(VisionRecipe recipe) => recipe.AuxiliaryLosses.Select(a => a.Loss).OfType<ShapeLoss>().Single();

    static int Shape(string name) => ShapeScenes.Shapes.ToList().IndexOf(name);

    [Fact]
    public void TargetsNameTheShapeThatCoversEachPatch()
    {
        var vision = Vision.VisionPresets.Get("tiny-vision").Vision;
        var pre = VisionRecipe.Preprocessor(vision, 4);
        var attrs = new ImageAttributes("overlap", Shape: "circle", Colour: "red", Shape2: "square", Colour2: "blue");
        var scene = new ImageScene(attrs, "white", new[] { new PlacedShape("square", "blue", 0.55f, 0.5f, 0.3f), new PlacedShape("circle", "red", 0.4f, 0.5f, 0.15f) }, null);
        var image = Vision.ImageLoader.Decode(scene.RenderPng(112), "overlap");
        using var p = VisionRecipe.ProcessImage(pre, pre, image);
        Assert.Equal(1, p.NumTiles);
        var t = ShapeLoss.Of("a red circle in front of a blue square", image, p, vision)!;
        Assert.Equal(vision.MaxNumTiles * vision.TokensPerTile, t.Length);
        long At(double x, double y) => t[PrintedGlyphs.SourceRow(vision, 0, (int)(y * 8) * vision.GridSize + (int)(x * 8))];
        Assert.Equal(Shape("circle"), At(0.4, 0.5));                     // the front shape
        Assert.Equal(Shape("square"), At(0.7, 0.5));                     // the back shape, where it shows
        Assert.Equal(ShapeScenes.Shapes.Count, At(0.05, 0.05));          // background
        Assert.Equal(-100, t[0]);                                        // the class token
        Assert.All(t.Skip(vision.TokensPerTile), l => Assert.Equal(-100, l));   // the three empty tiles
        Assert.Null(ShapeLoss.Of("the number 52", image, p, vision));
        Assert.Null(ShapeLoss.Of("a picture of nothing", image, p, vision));
        // A single shape's colour labels only its own patches.
        var single = ShapeLoss.Of("a large red circle in the centre", image, p, vision)!;
        Assert.Equal(Shape("circle"), single[PrintedGlyphs.SourceRow(vision, 0, 4 * vision.GridSize + 3)]);
        Assert.Equal(ShapeScenes.Shapes.Count, single[PrintedGlyphs.SourceRow(vision, 0, 4 * vision.GridSize + 5)]);
    }

    [Fact]
    public void LossIsCaptionPlusWeightedMeanPatchTermAndTrainsTheHeadAndImageSideOnly()
    {
        using var t = new Trainer(RecipeRegistry.Create("vision-stage1"), Cfg(0.7), TestRuns.TempDir(), TestRuns.Quiet);
        var recipe = (VisionRecipe)t.Recipe;
        var head = Shape(recipe).Head!;
        Assert.DoesNotContain(recipe.AuxiliaryLosses, a => a.Loss is GlyphLoss);
        Assert.Contains("shape_head.weight", t.TrainableNames);
        Assert.Equal(new long[] { ShapeScenes.Shapes.Count + 1, recipe.Vlm.Config.Text.HiddenSize }, head.weight!.shape);

        using var source = recipe.OpenData(false, DataCursor.Start);
        using var batch = source.Next(96);
        Assert.False(batch.Tensors.ContainsKey("glyph_target"));
        var labels = batch["shape_labels"];
        var images = batch.Images();
        var ids = batch["input_ids"];
        var states = recipe.Vlm.EncodeImages(images);
        using (no_grad())
        {
            // By hand: per image, the mean cross-entropy of its labelled patches; images without labels (print) add nothing.
            var logits = states.matmul(head.weight!.t()) + head.bias!;
            var lp = nn.functional.log_softmax(logits, -1);
            double expected = 0;
            long labelled = 0, imagesLabelled = 0;
            for (long b = 0; b < labels.shape[0]; b++)
            {
                double sum = 0; int n = 0;
                for (long r = 0; r < labels.shape[1]; r++)
                {
                    long l = labels[b, r].item<long>();
                    if (l < 0) continue;
                    sum -= lp[b, r, l].item<float>(); n++;
                }
                if (n > 0) { expected += sum / n; imagesLabelled++; }
                labelled += n;
            }
            Assert.True(imagesLabelled > 0);
            var (shape, right, patches, withLabels) = Shape(recipe).Compute(states, batch);
            Assert.Equal(expected, shape.item<float>(), 1e-4 * expected);
            Assert.Equal(labelled, patches);
            Assert.Equal(imagesLabelled, withLabels);
            Assert.InRange(right, 0, patches);

            double caption = PreferenceLosses.CrossEntropySum(recipe.Vlm.Forward(ids, images), batch["labels"]).item<float>();
            var output = recipe.Loss(batch);
            Assert.Equal(caption + 0.7 * shape.item<float>(), output.Sum.item<float>(), 1e-3 * Math.Abs(output.Sum.item<float>()));
            Assert.Equal(shape.item<float>() / withLabels * batch.LossElements, output.Metrics!["shape_loss"], 1e-3);
        }

        AuxiliaryLosses.AssertTrainsHeadAndImageSideOnly(recipe, Shape(recipe).Compute(states, batch).Sum, head);

        AuxiliaryLosses.AssertEvaluationBatchesLack(recipe, "shape_labels");
    }

    [Fact]
    public void TrainingLowersItAndKeepsBothHeadsOutOfTheModel()
    {
        string dir = TestRuns.TempDir();
        using (var t = new Trainer(RecipeRegistry.Create("vision-stage1"), AuxiliaryLosses.Config(Scenes.Value, new[] { "optim.total_steps=12", AuxiliaryLosses.Set((GlyphLoss.LinearName, 0.5), (ShapeLoss.Name, 1.0)) }), dir, TestRuns.Quiet))
        {
            t.Run();
            Assert.NotNull(((VisionRecipe)t.Recipe).AuxiliaryLosses.Select(a => a.Loss).OfType<GlyphLoss>().Single().Head);
        }
        var steps = File.ReadLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.TryGetProperty("shape_loss", out _)).ToList();
        Assert.True(steps.Count >= 10, $"{steps.Count} steps logged a shape loss");
        var loss = steps.Select(e => e.GetProperty("shape_loss").GetDouble()).ToList();
        Assert.True(loss.TakeLast(3).Average() < 0.8 * loss.Take(3).Average(), $"shape loss {loss[0]:F3} → {loss[^1]:F3}");
        Assert.InRange(steps[^1].GetProperty("shape_accuracy").GetDouble(), 0, 1);

        string ck = Path.Combine(dir, "checkpoints", CheckpointStore.NameOf(12));
        using (var f = Text.SafeTensorsFile.Open(Path.Combine(ck, Trainer.AuxiliaryFile)))
            Assert.Equal(new[] { "glyph_head.bias", "glyph_head.weight", "shape_head.bias", "shape_head.weight" }, f.Entries.Keys.Order());
        using (var m = Text.SafeTensorsFile.Open(Path.Combine(ck, "model.safetensors")))
            Assert.DoesNotContain(m.Entries.Keys, k => k.StartsWith("glyph_head", StringComparison.Ordinal) || k.StartsWith("shape_head", StringComparison.Ordinal));
    }

    [Fact]
    public void BadWeightIsRefusedByName()
    {
        var e = Assert.Throws<Text.ConfigException>(() => Cfg(-1));
        Assert.Contains("vision.auxiliary_losses[shape].weight", e.Message);
    }
}

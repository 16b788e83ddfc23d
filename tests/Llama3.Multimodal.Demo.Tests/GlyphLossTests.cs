using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Demo.Tests;

/// <summary>
/// The demo's glyph loss (<c>vision.auxiliary_losses</c> <c>glyph</c> and <c>glyph_linear</c>): where the printed characters are, which source rows and
/// tokens they give, how the loss adds to the caption loss, and that it trains the image side only.
/// </summary>
public class GlyphLossTests
{
    static readonly Lazy<string> Print = AuxiliaryLosses.Images(11, "word", "number");

    /// <summary>The config with the glyph loss at <paramref name="weight"/>: read through the output head, or by its own head
    /// when <paramref name="extra"/> holds <see cref="Linear"/>.</summary>
    static TrainConfig Cfg(double weight, params string[] extra)
    {
        string name = extra.Contains(Linear) ? GlyphLoss.LinearName : GlyphLoss.OutputName;
        return AuxiliaryLosses.Config(Print.Value, extra.Where(x => x != Linear).Prepend(AuxiliaryLosses.Set((name, weight))));
    }

    static GlyphLoss Glyph(VisionRecipe recipe) => (GlyphLoss)recipe.AuxiliaryLosses.Single().Loss;

    [Theory]
    [InlineData("47", 0.2f, 0.3f, 0.2f)]
    [InlineData("15", 0.5f, 0.6f, 0.1f)]
    [InlineData("81", 0.1f, 0.1f, 0.3f)]
    [InlineData("7", 0.4f, 0.4f, 0.2f)]
    [InlineData("CAT", 0.1f, 0.4f, 0.15f)]
    [InlineData("INK", 0.2f, 0.2f, 0.12f)]
    public void CentresFindEveryCharacterOfRenderedText(string text, float x, float y, float h)
    {
        const int side = 224;
        string kind = char.IsDigit(text[0]) ? "number" : "word";
        var scene = new ImageScene(new ImageAttributes(kind, Text: text), "grey", Array.Empty<PlacedShape>(), new PlacedText(text, x, y, h, SkiaSharp.SKColors.Black));
        var image = Vision.ImageLoader.Decode(scene.RenderPng(side), text);
        var c = PrintedGlyphs.Centres(image, text)!;
        Assert.Equal(text.Length, c.Length);
        double unit = h * side / 6;
        for (int k = 0; k < text.Length; k++)
        {
            double cx = x * side + k * StrokeFont.Advance * h * side + 2 * unit;
            Assert.InRange(c[k].X, cx - 1.5, cx + 1.5);
            Assert.InRange(c[k].Y, (y + h / 2) * side - 1.5, (y + h / 2) * side + 1.5);
        }
        Assert.Null(PrintedGlyphs.Centres(Vision.RgbImage.Filled(32, 32, 128, 128, 128), text));
    }

    [Fact]
    public void TargetsAreTheCharactersTokensUnderTheirPatches()
    {
        var vision = Vision.VisionPresets.Get("tiny-vision").Vision;
        var pre = VisionRecipe.Preprocessor(vision, 4);
        var scene = new ImageScene(new ImageAttributes("number", Text: "52"), "grey", Array.Empty<PlacedShape>(), new PlacedText("52", 0.55f, 0.1f, 0.2f, SkiaSharp.SKColors.Black));
        var image = Vision.ImageLoader.Decode(scene.RenderPng(224), "52");
        using var p = VisionRecipe.ProcessImage(pre, pre, image);
        Assert.Equal(4, p.NumTiles);
        var t = GlyphTargets("the number 52", image, p, vision, ByteTokenizer.Instance);
        Assert.Equal(new[] { (long)ByteTokenizer.Instance.Encode("5").Single(), ByteTokenizer.Instance.Encode("2").Single() }, t.Select(g => g.Token));
        // The glyphs sit in the top-right tile (slot 1 of 2 × 2), in patch row 3 (centre y = 0.2 · 224 ≈ 45 px; 45 / 14 → 3).
        foreach (var (row, _, _, _) in t)
        {
            int tile = row / vision.TokensPerTile, patch = row % vision.TokensPerTile - 1;
            Assert.Equal(1, tile);
            Assert.Equal(3, patch / vision.GridSize);
        }
        Assert.True(t[1].Row > t[0].Row, "the second digit lies right of the first");
        Assert.Empty(GlyphTargets("a small red circle at the top left", image, p, vision, ByteTokenizer.Instance));
        Assert.Empty(GlyphTargets("the number 52", Vision.RgbImage.Filled(224, 224, 128, 128, 128), p, vision, ByteTokenizer.Instance));
    }

    [Fact]
    public void LossIsCaptionPlusWeightedGlyphTermAndTrainsOnlyTheImageSide()
    {
        string dir = TestRuns.TempDir();
        using var t = new Trainer(RecipeRegistry.Create("vision-stage1"), Cfg(2.0), dir, TestRuns.Quiet);
        var recipe = (VisionRecipe)t.Recipe;
        using var source = recipe.OpenData(false, DataCursor.Start);
        using var batch = source.Next(96);
        var texts = File.ReadLines(Print.Value).Select(l => ImageCaptionGrammar.Parse(JsonDocument.Parse(l).RootElement.GetProperty("caption").GetString()!)!.Text!).Take(4);
        Assert.Equal(texts.Sum(s => s.Length), batch["glyph_target"].shape[0]);

        var images = batch.Images();
        var ids = batch["input_ids"];
        var states = recipe.Vlm.EncodeImages(images);
        using (no_grad())
        {
            var plain = recipe.Vlm.Forward(ids, images);
            var encoded = recipe.Vlm.ForwardEncoded(ids, images, states);
            Assert.Equal(0f, (plain - encoded).abs().max().item<float>());   // the same computation, bit for bit
            double caption = PreferenceLosses.CrossEntropySum(plain, batch["labels"]).item<float>();
            var (glyph, correct, slots) = Glyph(recipe).Compute(states, batch);
            Assert.Null(slots);
            var output = recipe.Loss(batch);
            Assert.Equal(caption + 2.0 * glyph.item<float>(), output.Sum.item<float>(), 1e-3 * Math.Abs(output.Sum.item<float>()));
            long n = batch["glyph_target"].shape[0];
            Assert.Equal(glyph.item<float>() / n * batch.LossElements, output.Metrics!["glyph_loss"], 1e-3);
            Assert.InRange(output.Metrics["glyph_accuracy"], 0, batch.LossElements);
            Assert.InRange(correct, 0, n);
        }

        // The glyph term alone reaches the encoder and projector, never the frozen decoder.
        AuxiliaryLosses.AssertTrainsHeadAndImageSideOnly(recipe, Glyph(recipe).Compute(states, batch).Sum, null);

        AuxiliaryLosses.AssertEvaluationBatchesLack(recipe, "glyph_target");
    }

    [Fact]
    public void TrainingWithTheGlyphLossLogsItAndLowersIt()
    {
        string dir = TestRuns.TempDir();
        using (var t = new Trainer(RecipeRegistry.Create("vision-stage1"), Cfg(1.0, "optim.total_steps=12"), dir, TestRuns.Quiet)) t.Run();
        var steps = File.ReadLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.TryGetProperty("glyph_loss", out _)).Select(e => e.GetProperty("glyph_loss").GetDouble()).ToList();
        Assert.Equal(12, steps.Count);
        Assert.True(steps.TakeLast(3).Average() < 0.9 * steps.Take(3).Average(), $"glyph loss {steps[0]:F3} → {steps[^1]:F3}");
    }

    [Fact]
    public void NegativeWeightIsRefusedByName()
    {
        var e = Assert.Throws<Text.ConfigException>(() => Cfg(-0.5));
        Assert.Contains("vision.auxiliary_losses[glyph].weight", e.Message);
        var cfg = AuxiliaryLosses.Config(Print.Value, new[] { AuxiliaryLosses.Set(("glyph_softmax", 1.0)) });
        var h = Assert.Throws<Text.ConfigException>(() => new Trainer(RecipeRegistry.Create("vision-stage1"), cfg, TestRuns.TempDir(), TestRuns.Quiet));
        Assert.Contains("glyph_softmax", h.Message);
        Assert.Contains(GlyphLoss.LinearName, h.Message);
    }

    const string Linear = "(glyph_linear)";

    static GlyphLoss.Target[] GlyphTargets(string caption, Vision.RgbImage image, Vision.ProcessedImage p, Vision.VisionConfig c, ITrainingTokenizer tok, bool linear = false) =>
        GlyphLoss.Of(caption, image, p, c, tok, linear);

    [Fact]
    public void LinearHeadTargetsAreClassesAndPlaces()
    {
        var vision = Vision.VisionPresets.Get("tiny-vision").Vision;
        var pre = VisionRecipe.Preprocessor(vision, 4);
        foreach (var text in new[] { "52", "FISH", "0" })
        {
            string kind = char.IsDigit(text[0]) ? "number" : "word";
            var scene = new ImageScene(new ImageAttributes(kind, Text: text), "white", Array.Empty<PlacedShape>(), new PlacedText(text, 0.1f, 0.3f, 0.2f, SkiaSharp.SKColors.Black));
            var image = Vision.ImageLoader.Decode(scene.RenderPng(112), text);
            using var p = VisionRecipe.ProcessImage(pre, pre, image);
            var t = GlyphTargets($"the {kind} {text}", image, p, vision, ByteTokenizer.Instance, linear: true);
            Assert.Equal(text.Select(ch => PrintedGlyphs.Alphabet.IndexOf(ch)), t.Select(g => g.Char));
            Assert.Equal(Enumerable.Range(0, text.Length), t.Select(g => g.Slot));
            Assert.Equal(text.Select(ch => (long)ByteTokenizer.Instance.Encode(ch.ToString()).Single()), t.Select(g => g.Token));
            Assert.Equal(t.Select(g => g.Row).Order(), t.Select(g => g.Row));   // left to right along one patch row
        }
        Assert.Equal(10, PrintedGlyphs.Alphabet.IndexOf('A'));
        Assert.True(ShapeScenes.Words.All(w => w.Length <= PrintedGlyphs.Slots && w.All(ch => PrintedGlyphs.Alphabet.Contains(ch))));
    }

    [Fact]
    public void LinearHeadLossIsCharacterPlusPlaceAndTrainsTheHeadAndImageSideOnly()
    {
        string dir = TestRuns.TempDir();
        using var t = new Trainer(RecipeRegistry.Create("vision-stage1"), Cfg(0.5, Linear), dir, TestRuns.Quiet);
        var recipe = (VisionRecipe)t.Recipe;
        var head = Glyph(recipe).Head!;
        Assert.Contains("glyph_head.weight", t.TrainableNames);
        Assert.Contains("glyph_head.bias", t.TrainableNames);
        Assert.DoesNotContain(recipe.Vlm.named_parameters(), p => p.name.Contains("glyph", StringComparison.Ordinal));
        Assert.Equal(new long[] { PrintedGlyphs.Alphabet.Length + PrintedGlyphs.Slots, recipe.Vlm.Config.Text.HiddenSize }, head.weight!.shape);

        using var source = recipe.OpenData(false, DataCursor.Start);
        using var batch = source.Next(96);
        var images = batch.Images();
        var ids = batch["input_ids"];
        var states = recipe.Vlm.EncodeImages(images);
        using (no_grad())
        {
            // The same sum computed by hand from the head's weights.
            long rows = states.shape[1];
            var flat = batch["glyph_sample"] * rows + batch["glyph_row"];
            var logits = states.reshape(-1, states.shape[2]).index_select(0, flat).matmul(head.weight!.t()) + head.bias!;
            int chars = PrintedGlyphs.Alphabet.Length;
            double expected = nn.functional.cross_entropy(logits.narrow(1, 0, chars), batch["glyph_class"], reduction: nn.Reduction.Sum).item<float>()
                + nn.functional.cross_entropy(logits.narrow(1, chars, PrintedGlyphs.Slots), batch["glyph_slot"], reduction: nn.Reduction.Sum).item<float>();
            var (glyph, correct, slots) = Glyph(recipe).Compute(states, batch);
            Assert.Equal(expected, glyph.item<float>(), 1e-4 * expected);
            long n = batch["glyph_class"].shape[0];
            Assert.Equal(logits.narrow(1, 0, chars).argmax(-1).eq(batch["glyph_class"]).sum().item<long>(), correct);
            Assert.Equal(logits.narrow(1, chars, PrintedGlyphs.Slots).argmax(-1).eq(batch["glyph_slot"]).sum().item<long>(), slots);

            double caption = PreferenceLosses.CrossEntropySum(recipe.Vlm.Forward(ids, images), batch["labels"]).item<float>();
            var output = recipe.Loss(batch);
            Assert.Equal(caption + 0.5 * glyph.item<float>(), output.Sum.item<float>(), 1e-3 * Math.Abs(output.Sum.item<float>()));
            Assert.InRange(output.Metrics!["glyph_slot_accuracy"], 0, batch.LossElements);
        }

        AuxiliaryLosses.AssertTrainsHeadAndImageSideOnly(recipe, Glyph(recipe).Compute(states, batch).Sum, head);
    }

    [Fact]
    public void LinearHeadIsKeptInCheckpointsNotInTheModelAndResumesExactly()
    {
        string full = TestRuns.TempDir(), split = TestRuns.TempDir();
        TrainResult whole;
        Dictionary<string, float[]> head;
        using (var t = new Trainer(RecipeRegistry.Create("vision-stage1"), Cfg(1.0, Linear, "optim.total_steps=12"), full, TestRuns.Quiet))
        {
            whole = t.Run();
            head = TestRuns.Weights(Glyph((VisionRecipe)t.Recipe).Head!);
        }
        var steps = File.ReadLines(Path.Combine(full, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.TryGetProperty("glyph_slot_accuracy", out _)).Select(e => e.GetProperty("glyph_loss").GetDouble()).ToList();
        Assert.Equal(12, steps.Count);
        Assert.True(steps.TakeLast(3).Average() < 0.9 * steps.Take(3).Average(), $"glyph loss {steps[0]:F3} → {steps[^1]:F3}");

        string ck = Path.Combine(full, "checkpoints", CheckpointStore.NameOf(12));
        using (var f = Text.SafeTensorsFile.Open(Path.Combine(ck, Trainer.AuxiliaryFile)))
            Assert.Equal(new[] { "glyph_head.bias", "glyph_head.weight" }, f.Entries.Keys.Order());
        using (var m = Text.SafeTensorsFile.Open(Path.Combine(ck, "model.safetensors")))
            Assert.DoesNotContain(m.Entries.Keys, k => k.Contains("glyph", StringComparison.Ordinal));
        // The saved model loads as a plain vision model.
        using (var vlm = Vision.VisionLanguageModel.FromPretrained(ck, CPU, ScalarType.Float32)) Assert.NotNull(vlm);

        using (var t = new Trainer(RecipeRegistry.Create("vision-stage1"), Cfg(1.0, Linear, "optim.total_steps=12", "train.max_steps=6", "train.save_every=6"), split, TestRuns.Quiet)) t.Run();
        using (var t = new Trainer(RecipeRegistry.Create("vision-stage1"), Cfg(1.0, Linear, "optim.total_steps=12", "train.save_every=6"), split, TestRuns.Quiet))
        {
            var r = t.Run(resume: true);
            Assert.Equal(whole.History.Skip(6).Select(h => h.Loss), r.History.Select(h => h.Loss));
            var resumed = TestRuns.Weights(Glyph((VisionRecipe)t.Recipe).Head!);
            foreach (var (name, w) in head) Assert.True(w.AsSpan().SequenceEqual(resumed[name]), $"glyph head {name} differs after resume");
        }

        // A new run started from the checkpoint (model.init_from) continues its head; from the model files alone, the
        // head starts as initialised.
        using (var t = new Trainer(RecipeRegistry.Create("vision-stage1"), Cfg(1.0, Linear, $"model.init_from=\"{ck}\""), TestRuns.TempDir(), TestRuns.Quiet))
        {
            var continued = TestRuns.Weights(Glyph((VisionRecipe)t.Recipe).Head!);
            foreach (var (name, w) in head) Assert.True(w.AsSpan().SequenceEqual(continued[name]), $"glyph head {name} not taken from {ck}");
        }
        string bare = TestRuns.TempDir();
        foreach (var f in Directory.GetFiles(ck).Where(f => Path.GetFileName(f) != Trainer.AuxiliaryFile)) File.Copy(f, Path.Combine(bare, Path.GetFileName(f)));
        using (var t = new Trainer(RecipeRegistry.Create("vision-stage1"), Cfg(1.0, Linear, $"model.init_from=\"{bare}\""), TestRuns.TempDir(), TestRuns.Quiet))
        {
            var fresh = TestRuns.Weights(Glyph((VisionRecipe)t.Recipe).Head!);
            Assert.False(fresh["weight"].AsSpan().SequenceEqual(head["weight"]), "a folder without auxiliary.safetensors must leave the head as initialised");
        }
    }
}

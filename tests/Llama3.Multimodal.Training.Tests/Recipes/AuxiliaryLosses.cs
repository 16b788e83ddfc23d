using static TorchSharp.torch;

namespace Llama3.Multimodal.Training.Tests.Recipes;

/// <summary>Shared set-up and checks of the vision recipes' extra losses (the anchor loss; the demo's glyph and patch-shape losses).</summary>
internal static class AuxiliaryLosses
{
    /// <summary>A made-once training set of eight 112-px <c>mm-demo make-data images</c> records of <paramref name="kinds"/>.</summary>
    public static Lazy<string> Images(int seed, params string[] kinds) => new(() => ImageDataMaker.Make(
        new ImageMakerOptions(8, Seed: seed, Size: 112, Kinds: kinds), Path.Combine(TestRuns.TempDir(), "images")).ManifestPath);

    /// <summary>A small vision-stage1 config on <paramref name="manifest"/> (fresh tiny model, 4 images a step, no shuffling) plus <paramref name="sets"/>.</summary>
    public static TrainConfig Config(string manifest, IEnumerable<string> sets) => ConfigLoader.Load(DemoConfigs.For("vision-stage1"), null, new List<string>
    {
        "model.init_from=null", $"data.train=\"{manifest}\"", $"data.eval=\"{manifest}\"", "optim.total_steps=4", "optim.warmup_steps=1",
        "optim.schedule=\"constant\"", "optim.lr=0.01", "data.seq_len=96", "train.log_every=1000", "train.eval_every=0", "train.save_every=0",
        "batch.micro=4", "batch.global=4", "data.prefetch=4", "data.shuffle=false",
    }.Concat(sets).ToList());

    /// <summary>The <c>--set</c> of <c>vision.auxiliary_losses</c> naming <paramref name="losses"/> in order.</summary>
    public static string Set(params (string Name, double Weight)[] losses) =>
        "vision.auxiliary_losses=[" + string.Join(",", losses.Select(l => $"{{\"name\":\"{l.Name}\",\"weight\":{l.Weight.ToString(System.Globalization.CultureInfo.InvariantCulture)}}}")) + "]";

    /// <summary>Back-propagates <paramref name="loss"/> alone and checks that it reaches the head (if any), the projector and
    /// the image encoder, and never the frozen decoder.</summary>
    public static void AssertTrainsHeadAndImageSideOnly(VisionRecipe recipe, Tensor loss, TorchSharp.Modules.Linear? head)
    {
        foreach (var p in recipe.Vlm.parameters()) p.grad?.zero_();
        loss.backward();
        var grads = recipe.Vlm.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad is { } g ? g.abs().sum().item<float>() : 0f);
        if (head is not null) Assert.True(head.weight!.grad!.abs().sum().item<float>() > 0);
        Assert.True(grads["multi_modal_projector.weight"] > 0);
        Assert.True(grads["vision_model.patch_embedding.weight"] > 0);
        Assert.All(grads.Where(g => g.Key.StartsWith("language_model.", StringComparison.Ordinal)), g => Assert.Equal(0f, g.Value));
    }

    /// <summary>Checks that evaluation batches carry no <paramref name="key"/>: the evaluation loss stays the caption loss.</summary>
    public static void AssertEvaluationBatchesLack(VisionRecipe recipe, string key)
    {
        using var eval = recipe.OpenData(true, DataCursor.Start);
        using var batch = eval.Next(96);
        Assert.False(batch.Tensors.ContainsKey(key));
    }
}

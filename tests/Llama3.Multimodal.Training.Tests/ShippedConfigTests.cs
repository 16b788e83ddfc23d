using Llama3.Multimodal.Training;

namespace Llama3.Multimodal.Training.Tests;

public class ShippedConfigTests
{
    static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (Directory.Exists(Path.Combine(d.FullName, "configs", "training"))) return d.FullName;
        throw new DirectoryNotFoundException("configs/training not found above the test binaries.");
    }

    [Theory]
    [InlineData("text-pretrain")]
    [InlineData("sft")]
    [InlineData("dpo")]
    [InlineData("reward-model")]
    [InlineData("vision-stage1")]
    [InlineData("vision-stage2")]
    [InlineData("vision-sft")]
    [InlineData("vision-reward")]
    [InlineData("vision-dpo")]
    [InlineData("video")]
    [InlineData("speech-stage1")]
    [InlineData("speech-stage2")]
    public void ShippedDefaultConfigMatchesTheRecipeDefaults(string recipe)
    {
        string path = Path.Combine(RepoRoot(), "configs", "training", recipe + ".json");
        using var r = RecipeRegistry.Create(recipe);
        var d = r.DefaultConfig();
        var c = ConfigLoader.Load(d, path);
        Assert.StartsWith($"mm-train {recipe} --config configs/training/{recipe}.json", c.Command);
        Assert.Equal(recipe, c.Recipe);
        Assert.Equal(d.Optim, c.Optim);
        Assert.Equal(d.Loss with { Reference = null }, c.Loss with { Reference = null });
        Assert.Equal(d.Batch.Global, c.Batch.Global);
        Assert.Equal(d.Batch.Ramp, c.Batch.Ramp);
        Assert.Equal(d.Data.SeqLen, c.Data.SeqLen);
        Assert.Equal(d.Model.Preset, c.Model.Preset);
    }

    [Fact]
    public void DemoPipelineConfigsLoadAndChainTheStages()
    {
        var dir = Path.Combine(RepoRoot(), "demo", "configs");
        var files = Directory.GetFiles(dir, "*.json").OrderBy(f => f, StringComparer.Ordinal).ToList();
        Assert.Equal(new[] { "sft", "speech-stage1", "speech-stage2", "text-pretrain", "video", "vision-stage1", "vision-stage2" },
            files.Select(Path.GetFileNameWithoutExtension));
        var configs = new Dictionary<string, TrainConfig>();
        foreach (var f in files)
        {
            string recipe = Path.GetFileNameWithoutExtension(f);
            var c = ConfigLoader.Load(DemoConfigs.For(recipe), f);
            Assert.Equal(recipe, c.Recipe);
            configs[recipe] = c;
        }
        // Each stage names the previous stage's folder (demo/plan.json sets every path explicitly); paths in a config
        // resolve against the config's folder.
        string Rel(string? p) => Path.GetRelativePath(dir, p!).Replace('\\', '/');
        Assert.Equal("runs/text-pretrain/final", Rel(configs["vision-stage1"].Model.InitFrom));
        Assert.Equal("runs/vision-stage1/final", Rel(configs["vision-stage2"].Model.InitFrom));
        Assert.Equal("runs/vision-stage2/final", Rel(configs["video"].Model.InitFrom));
        Assert.Equal("runs/text-pretrain/final", Rel(configs["sft"].Model.InitFrom));
        Assert.Equal("runs/sft/final", Rel(configs["speech-stage2"].Model.InitFrom));
        Assert.Equal("runs/speech-stage1/final", Rel(configs["speech-stage2"].Speech!.Finetune!.EncoderFrom));
        // The video stage builds the shipped model's adapter (demo/NOTES.md): groups of 4 frames merged place by
        // place, video cross-attention layers starting as copies of the image layers they precede.
        var video = configs["video"].Video!;
        Assert.Equal((8, 4, "per_position", true), (video.NumFrames, video.FramesPerGroup, video.AggregatorMerge, video.VideoFromImageLayers));
    }

    [Fact]
    public void TextPretrainDefaultsAreThePaperNumbers()
    {
        using var r = new TextPretrainRecipe();
        var c = r.DefaultConfig();
        Assert.Equal((8e-5, 8e-7, 8000L, 1_200_000L, "cosine"), (c.Optim.Lr, c.Optim.MinLr, c.Optim.WarmupSteps, c.Optim.TotalSteps, c.Optim.Schedule));
        Assert.Equal((0.9, 0.95, 0.1, 1.0), (c.Optim.Beta1, c.Optim.Beta2, c.Optim.WeightDecay, c.Optim.GradClip));
        using var dpo = new DpoRecipe();
        Assert.Equal((0.1, 0.2, 1e-5), (dpo.DefaultConfig().Loss.DpoBeta, dpo.DefaultConfig().Loss.NllWeight, dpo.DefaultConfig().Optim.Lr));
        using var sft = new SftRecipe();
        Assert.Equal(1e-5, sft.DefaultConfig().Optim.Lr);
    }
}

public class PhaseConfigTests
{
    [Theory]
    [InlineData("text-pretrain-long-context.json", 16384, "constant")]
    [InlineData("text-pretrain-anneal.json", 131072, "linear")]
    public void PretrainingPhaseConfigsLoadOverTheDefaults(string file, int seqLen, string schedule)
    {
        string root = AppContext.BaseDirectory;
        while (!Directory.Exists(Path.Combine(root, "configs", "training"))) root = Path.GetDirectoryName(root)!;
        using var r = new TextPretrainRecipe();
        var c = ConfigLoader.Load(r.DefaultConfig(), Path.Combine(root, "configs", "training", file));
        Assert.Equal(seqLen, c.Data.SeqLen);
        Assert.Equal(schedule, c.Optim.Schedule);
        Assert.Equal(0.95, c.Optim.Beta2);           // untouched defaults stay
        if (schedule == "linear") Assert.Equal(0, new LrSchedule(c.Optim.Schedule, c.Optim.Lr, c.Optim.MinLr, c.Optim.WarmupSteps, c.Optim.TotalSteps).At(c.Optim.TotalSteps));
        else Assert.Equal(131072, BatchPlan.At(c, 700_000_000_000).SeqLen);
    }
}

using Llama3.Multimodal.Training;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training.Tests;

/// <summary>Synthetic data (SyntheticText grammar, fixed seed) and small configs shared by the tests.</summary>
internal static class TestRuns
{
    static readonly Lazy<string> Data = new(() =>
    {
        string d = TempDir();
        SyntheticText.Write(d, 7, documents: 300, dialogs: 64, pairs: 64);
        return d;
    });

    public static string DataDir => Data.Value;

    /// <summary>The repository root (the folder above the test binaries that holds assets/models/demo).</summary>
    public static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (Directory.Exists(Path.Combine(d.FullName, "assets", "models", "demo"))) return d.FullName;
        throw new DirectoryNotFoundException("assets/models/demo not found above the test binaries.");
    }

    public static string TempDir()
    {
        return Llama3.Multimodal.Tests.Shared.TestTemp.NewDir("l3mm-train-tests");
    }

    /// <summary>The recipe's demo config over the shared data, shrunk further (dim 32, seq 32), then <paramref name="sets"/>.</summary>
    public static TrainConfig Config(string recipe, params string[] sets)
    {
        using var r = RecipeRegistry.Create(recipe);
        var baseSets = new List<string> { "model.hidden_size=32", "model.intermediate_size=64", "model.max_position_embeddings=256", "train.log_every=1000" };
        if (recipe == "text-pretrain") baseSets.AddRange(new[] { "data.seq_len=32", "batch.micro=2", "batch.global=64" });
        else baseSets.AddRange(new[] { "data.seq_len=64", "batch.micro=2", "batch.global=4" });
        baseSets.AddRange(sets);
        return ConfigLoader.Load(DemoConfigs.For(recipe), Path.Combine(DataDir, recipe + ".json"), baseSets);
    }

    public static TrainerOptions Quiet => new() { Progress = null, Plot = false, TensorBoard = false };

    public static Dictionary<string, float[]> Weights(TorchSharp.torch.nn.Module m) =>
        m.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().cpu().data<float>().ToArray());
}

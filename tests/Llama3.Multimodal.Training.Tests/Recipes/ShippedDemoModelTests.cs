using System.Text.Json.Nodes;
using Llama3.Multimodal.Vision;

namespace Llama3.Multimodal.Training.Tests;

/// <summary>The shipped demo vision model works through the library's public captioning API, not only through <c>mm-train eval</c>.</summary>
public class ShippedDemoModelTests
{
    static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (Directory.Exists(Path.Combine(d.FullName, "assets", "models", "demo"))) return d.FullName;
        throw new DirectoryNotFoundException("assets/models/demo not found above the test binaries.");
    }

    [Fact]
    public void PublicCaptionApiOnTheShippedModelEqualsTheRecipeEvaluation()
    {
        string root = RepoRoot();
        string model = Path.Combine(root, "assets", "models", "demo", "vision");
        string manifest = Path.Combine(root, "assets", "demo", "images", "manifest.jsonl");
        var eval = MultimodalEval.Caption(model, manifest, limit: 4);
        var predictions = eval["examples"]!.AsArray().Select(e => e!["prediction"]!.GetValue<string>()).ToList();

        using var vlm = VisionLanguageModel.FromPretrained(model);
        Assert.Equal(VisionPromptFormat.Completion, vlm.PromptFormat);   // train_info.json names a pretraining recipe
        var images = File.ReadLines(manifest).Take(4)
            .Select(l => Path.Combine(Path.GetDirectoryName(manifest)!, JsonNode.Parse(l)!["image"]!.GetValue<string>())).ToList();
        var captions = images.Select(p => vlm.Caption(p)).ToList();
        Assert.Equal(predictions.Take(captions.Count), captions);
        Assert.All(captions, c => Assert.False(string.IsNullOrWhiteSpace(c)));
    }
}

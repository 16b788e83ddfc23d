using System.Text.Json.Nodes;
using Llama3.Multimodal.Vision;

namespace Llama3.Multimodal.Training.Tests;

/// <summary>The shipped demo vision model works through the library's public captioning API, not only through <c>mm-train eval</c>.</summary>
public class ShippedDemoModelTests
{

    [Fact]
    public void PublicCaptionApiOnTheShippedModelEqualsTheRecipeEvaluation()
    {
        string root = TestRuns.RepoRoot();
        string model = Path.Combine(root, "assets", "models", "demo", "vision");
        string manifest = Path.Combine(root, "assets", "demo", "images", "manifest.jsonl");
        var eval = MultimodalEval.Caption(model, manifest, limit: 4);
        var predictions = eval["examples"]!.AsArray().Select(e => e!["prediction"]!.GetValue<string>()).ToList();

        using var vlm = VisionLanguageModel.FromPretrained(model);
        Assert.Equal(VisionPromptFormat.Completion, vlm.PromptFormat);   // generation_config.json stores the completion format
        var images = File.ReadLines(manifest).Take(4)
            .Select(l => Path.Combine(Path.GetDirectoryName(manifest)!, JsonNode.Parse(l)!["image"]!.GetValue<string>())).ToList();
        var captions = images.Select(p => vlm.Caption(p)).ToList();
        Assert.Equal(predictions.Take(captions.Count), captions);
        Assert.All(captions, c => Assert.False(string.IsNullOrWhiteSpace(c)));
    }

    // The shipped vision model's exact captions (grammar-aware scores: the demo's tests).
    [Fact]
    public void ShippedVisionModelCaptionsTheShippedImages()
    {
        string root = TestRuns.RepoRoot();
        using var vlm = VisionLanguageModel.FromPretrained(Path.Combine(root, "assets", "models", "demo", "vision"));
        Assert.Equal("two large red diamonds", vlm.Caption(Path.Combine(root, "assets", "demo", "images", "000002.png")));
        var eval = MultimodalEval.Caption(Path.Combine(root, "assets", "models", "demo", "vision"), Path.Combine(root, "assets", "demo", "images", "manifest.jsonl"));
        Assert.Equal(1.0, eval["exact_match"]!.GetValue<double>());
    }

    [Fact]
    public void EvaluationListsAsManyExamplesAsAsked()
    {
        string root = TestRuns.RepoRoot();
        string model = Path.Combine(root, "assets", "models", "demo", "vision");
        string manifest = Path.Combine(root, "assets", "demo", "images", "manifest.jsonl");
        int records = File.ReadLines(manifest).Count(l => !string.IsNullOrWhiteSpace(l));
        Assert.True(records > MultimodalEval.DefaultExamples);
        Assert.Equal(MultimodalEval.DefaultExamples, MultimodalEval.Caption(model, manifest)["examples"]!.AsArray().Count);
        var all = MultimodalEval.Caption(model, manifest, examples: -1);
        Assert.Equal(records, all["examples"]!.AsArray().Count);
        Assert.Equal(File.ReadLines(manifest).Select(l => JsonNode.Parse(l)!["caption"]!.GetValue<string>()),
            all["examples"]!.AsArray().Select(e => e!["reference"]!.GetValue<string>()));
        Assert.Empty(MultimodalEval.Caption(model, manifest, limit: 3, examples: 0)["examples"]!.AsArray());
        Assert.Equal(2, MultimodalEval.Caption(model, manifest, limit: 3, examples: 2)["examples"]!.AsArray().Count);
    }

    [Fact]
    public void ShippedSpeechModelTranscribesHeldOutVoices()
    {
        string root = TestRuns.RepoRoot();
        var eval = MultimodalEval.Asr(Path.Combine(root, "assets", "models", "demo", "speech"), Path.Combine(root, "assets", "demo", "speech", "manifest.jsonl"));
        double wer = eval["wer"]!.GetValue<double>();
        Assert.True(wer <= 0.10, eval.ToJsonString());                      // the model card's target for unseen voices
        // Voices and speed never heard in training: three of the four utterances come out word for word.
        var pairs = eval["examples"]!.AsArray().Select(e => (Ref: e!["reference"]!.GetValue<string>(), Pred: e["prediction"]!.GetValue<string>())).ToList();
        Assert.Equal(4, pairs.Count);
        Assert.True(pairs.Count(p => p.Ref == p.Pred) >= 3, eval.ToJsonString());
        Assert.Equal("small orange circles and green stars", pairs[1].Pred);
    }
}

using System.Text.Json.Nodes;
using Llama3.Multimodal.Vision;

namespace Llama3.Multimodal.Demo.Tests;

/// <summary>The shipped demo models on the shipped held-out media, scored with the demo's grammars.</summary>
public class ShippedDemoScoresTests
{
    // Real assertions on the shipped models' outputs for the shipped held-out media (scores: assets/models/demo/MODEL_CARD.md).
    [Fact]
    public void ShippedVisionModelCaptionsTheShippedImages()
    {
        string root = TestRuns.RepoRoot();
        using var vlm = VisionLanguageModel.FromPretrained(Path.Combine(root, "assets", "models", "demo", "vision"));
        Assert.Equal("two large red diamonds", vlm.Caption(Path.Combine(root, "assets", "demo", "images", "000002.png")));
        var eval = DemoEval.Caption(Path.Combine(root, "assets", "models", "demo", "vision"), Path.Combine(root, "assets", "demo", "images", "manifest.jsonl"));
        // Every caption of the eight example images right, every attribute of them too.
        Assert.Equal(1.0, eval["exact_match"]!.GetValue<double>());
        int wrong = 0;
        foreach (var attribute in new[] { "colour", "size", "position", "count", "shape", "text" })
        {
            if (eval["per_attribute"]![attribute] is not { } a) continue;
            wrong += a["total"]!.GetValue<int>() - a["correct"]!.GetValue<int>();
        }
        Assert.True(wrong == 0, $"{wrong} attributes wrong: {eval.ToJsonString()}");
    }

    [Fact]
    public void ShippedVisionInstructModelAnswersQuestionsAboutTheShippedImages()
    {
        // assets/demo/dialogues: questions about the example images, each after the reference turns before it (build/run.sh
        // prints the same table). The answers are the shipped model's, exactly; scores: assets/models/demo/MODEL_CARD.md.
        string root = TestRuns.RepoRoot();
        var eval = DialogueEval.Dialogue(Path.Combine(root, "assets", "models", "demo", "vision-instruct"), Path.Combine(root, "assets", "demo", "dialogues", "manifest.jsonl"), examples: -1);
        var answers = eval["answers"]!.AsArray().Select(e => e!["prediction"]!.GetValue<string>()).ToList();
        Assert.Equal(new[]
        {
            "a small orange triangle at the bottom", "it is 1",                  // the number 1: missed as a picture, read as a number
            "it is at the bottom", "there are two", "they are red",
            "the purple star is in front",                                       // the purple diamond: missed
            "it is orange", "a large yellow diamond at the top",
            "it is at the top", "it is blue", "there is one",
        }, answers);
        Assert.Equal(9, eval["answers"]!.AsArray().Count(e => e!["correct"]!.GetValue<bool>()));
    }

    [Fact]
    public void ShippedVideoModelNamesTheFirstObjectAndTheSecondEvent()
    {
        string root = TestRuns.RepoRoot();
        var eval = DemoEval.Video(Path.Combine(root, "assets", "models", "demo", "video"), Path.Combine(root, "assets", "demo", "videos", "manifest.jsonl"));
        var pairs = eval["examples"]!.AsArray().Select(e => (Ref: e!["reference"]!.GetValue<string>().Split(' '), Pred: e["prediction"]!.GetValue<string>().Split(' '))).ToList();
        Assert.Equal(4, pairs.Count);
        Assert.True(pairs.Count(p => p.Ref.Length > 1 && p.Pred.Length > 1 && p.Ref[1] == p.Pred[1]) >= 3, eval.ToJsonString());
        // The second event (what happens after "then") is named right in most clips.
        Assert.True(eval["per_part"]!["event2"]!["correct"]!.GetValue<int>() >= 2, eval.ToJsonString());
        // The first subject's shape, which the image encoder has to tell apart in 2 × 2-tile frames.
        Assert.True(eval["per_part"]!["shape"]!["correct"]!.GetValue<int>() >= 3, eval.ToJsonString());
    }
}

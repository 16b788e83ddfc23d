using System.Text.Json.Nodes;

namespace Llama3.Multimodal.Demo.Tests;

/// <summary>The demo's evaluation (<c>mm-demo eval</c>): grammar-aware caption and video scores, and the two probes.</summary>
public class DemoEvalTests
{
    [Fact]
    public void ScoresCaptionAndVideoModelsWithTheGrammarsAndProbesThem()
    {
        string dir = TestRuns.TempDir();
        string Train(string recipe)
        {
            string o = Path.Combine(dir, recipe);
            using (var t = new Trainer(RecipeRegistry.Create(recipe), MediaTestData.Config(recipe, 1), o, TestRuns.Quiet)) t.Run();
            return Path.Combine(o, "checkpoints", "step-00000001");
        }
        string imageModel = Train("vision-stage1"), videoModel = Train("video");
        var cap = DemoEval.Caption(imageModel, MediaTestData.ImageManifest, limit: 2, maxNewTokens: 8);
        Assert.Equal(2, cap["count"]!.GetValue<int>());
        Assert.InRange(cap["exact_match"]!.GetValue<double>(), 0, 1);
        Assert.NotEmpty(cap["per_attribute"]!.AsObject());
        foreach (var (_, v) in cap["per_attribute"]!.AsObject()) Assert.InRange(v!["accuracy"]!.GetValue<double>(), 0, 1);
        Assert.Equal(2, cap["per_kind"]!.AsObject().Sum(kv => kv.Value!["total"]!.GetValue<int>()));
        Assert.Equal(2, cap["examples"]!.AsArray().Count);

        var vid = DemoEval.Video(videoModel, MediaTestData.VideoManifest, limit: 1, maxNewTokens: 8);
        Assert.InRange(vid["accuracy"]!.GetValue<double>(), 0, 1);
        Assert.Equal(1, vid["count"]!.GetValue<int>());
        Assert.Equal(new[] { "colour", "shape", "event1", "subject2", "event2" }, vid["per_part"]!.AsObject().Select(kv => kv.Key));
        foreach (var (_, v) in vid["per_part"]!.AsObject()) Assert.Equal(1, v!["total"]!.GetValue<int>());

        // The direction probe on 24 clips: every "moves" event counted, one accuracy per feature set.
        string clips = VideoDataMaker.Make(new VideoMakerOptions(24, Seed: 5, Size: 64, Seconds: 2, Fps: 4), Path.Combine(dir, "probe-clips")).ManifestPath;
        int moves = File.ReadLines(clips).Select(l => JsonNode.Parse(l)!["caption"]!.GetValue<string>())
            .Sum(c => c.Split(" then ").Count(e => e.Split(' ').Contains("moves")));
        var probe = DemoEval.VideoDirectionProbe(videoModel, clips);
        Assert.Equal(moves, probe["moves"]!.GetValue<int>());
        Assert.True(moves >= 8, $"{moves} moves");
        Assert.Equal(0.25, probe["chance"]!.GetValue<double>());
        Assert.Equal(new[] { "frame_tokens", "object_tokens", "mean_tokens", "aggregated" }, probe["direction_accuracy"]!.AsObject().Select(kv => kv.Key));
        foreach (var (_, v) in probe["direction_accuracy"]!.AsObject()) Assert.InRange(v!.GetValue<double>(), 0, 1);
        var few = Assert.Throws<DataFormatException>(() => DemoEval.VideoDirectionProbe(videoModel, clips, limit: 2));
        Assert.Contains(clips, few.Message);
        Assert.Contains("at least 8", few.Message);

        // The number probe on 24 printed numbers: only two-digit ones are probed, one accuracy per feature set and digit.
        string numbers = ImageDataMaker.Make(new ImageMakerOptions(24, Seed: 6, Size: 64, Kinds: new[] { "number" }), Path.Combine(dir, "probe-numbers")).ManifestPath;
        int twoDigit = File.ReadLines(numbers).Count(l => JsonNode.Parse(l)!["caption"]!.GetValue<string>().Split(' ')[^1].Length == 2);
        var np = DemoEval.NumberProbe(imageModel, numbers, maxNewTokens: 4);
        Assert.Equal(twoDigit, np["count"]!.GetValue<int>());
        Assert.Equal(twoDigit - (int)(twoDigit * 0.75), np["scored"]!.GetValue<int>());
        foreach (var set in new[] { "patch_embeddings", "encoder_tokens", "mean_tokens" })
            Assert.Equal(new[] { "tens", "ones" }, np[set]!.AsObject().Select(kv => kv.Key));
        Assert.Equal(new[] { "patch_embeddings", "encoder_tokens" }, np["glyph_digit"]!.AsObject().Select(kv => kv.Key));
        Assert.Equal(new[] { "tens", "ones", "both", "swapped" }, np["caption"]!.AsObject().Select(kv => kv.Key));
        foreach (var key in new[] { "patch_embeddings", "glyph_digit", "glyph_order", "caption" })
            foreach (var (_, v) in np[key]!.AsObject()) Assert.InRange(v!.GetValue<double>(), 0, 1);
        var noNumbers = Assert.Throws<DataFormatException>(() => DemoEval.NumberProbe(imageModel, MediaTestData.ImageManifest));
        Assert.Contains("two-digit", noNumbers.Message);
    }
}

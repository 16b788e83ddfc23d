using System.Text.Json.Nodes;
using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Video.Tests;

public class VideoConfigJsonTests
{
    [Fact]
    public void RoundTripKeepsEveryField()
    {
        var c = VideoPresets.Get("tiny-video").Video;
        var text = VideoConfigJson.ToJson(c).ToJsonString();                       // as written to and read from disk
        var back = VideoConfigJson.Parse(LlamaConfigJson.ParseObject(text, "video_config.json"), "video_config.json");
        Assert.Equal(c.Aggregator with { NumLatents = c.Aggregator.Latents }, back.Aggregator);
        Assert.Equal(c.NumFrames, back.NumFrames);
        Assert.Equal(c.VideoTokenId, back.VideoTokenId);
        Assert.Equal(c.CrossAttentionLayers, back.CrossAttentionLayers);
    }

    [Fact]
    public void UnknownFieldIsNamed()
    {
        var o = VideoConfigJson.ToJson(VideoPresets.Get("tiny-video").Video);
        ((JsonObject)o["aggregator"]!)["num_latent"] = 4;
        var e = Assert.Throws<ConfigException>(() => VideoConfigJson.Parse(o, "dir/video_config.json"));
        Assert.Contains("dir/video_config.json aggregator", e.Message);
        Assert.Contains("'num_latent'", e.Message);
    }

    [Fact]
    public void PlacementOutsideTheImageLayersIsRejected()
    {
        var cfg = VideoPresets.Get("tiny-video");
        var bad = cfg with { Video = cfg.Video with { CrossAttentionLayers = new[] { 6 } } };
        var e = Assert.Throws<ConfigException>(() => bad.Validate());
        Assert.Contains("cross_attention_layers entry 6", e.Message);
        var unordered = cfg with { Video = cfg.Video with { CrossAttentionLayers = new[] { 4, 1 } } };
        Assert.Contains("strictly ascending", Assert.Throws<ConfigException>(() => unordered.Validate()).Message);
        var wrongTokens = cfg with { Video = cfg.Video with { Aggregator = cfg.Video.Aggregator with { TokensPerFrame = 65 } } };
        Assert.Contains("tokens_per_frame 65", Assert.Throws<ConfigException>(() => wrongTokens.Validate()).Message);
        var clash = cfg with { Video = cfg.Video with { VideoTokenId = 128256 } };
        Assert.Contains("video_token_id 128256", Assert.Throws<ConfigException>(() => clash.Validate()).Message);
    }

    [Fact]
    public void FoldersWithoutMaxGroupsReadAsNoGroupEmbedding()
    {
        var o = VideoConfigJson.ToJson(VideoPresets.Get("tiny-video").Video);
        var agg = (JsonObject)o["aggregator"]!;
        Assert.Equal(4, (int)agg["max_groups"]!);
        agg.Remove("max_groups");
        Assert.Equal(0, VideoConfigJson.Parse(o, "old/video_config.json").Aggregator.MaxGroups);
        agg["max_groups"] = -2;
        var e = Assert.Throws<ConfigException>(() => VideoConfigJson.Parse(o, "bad/video_config.json").Validate(6, new[] { 1, 4 }, "bad/video_config.json"));
        Assert.Contains("max_groups = -2", e.Message);
    }
    [Fact]
    public void MergeRoundTripsAndFoldersWithoutItMergeWithLatents()
    {
        var c = VideoPresets.Get("tiny-video").Video;
        var pp = c with { Aggregator = c.Aggregator with { Merge = TemporalAggregatorConfig.MergePerPosition, NumLatents = null } };
        var o = VideoConfigJson.ToJson(pp);
        Assert.Equal("per_position", (string)o["aggregator"]!["merge"]!);
        var back = VideoConfigJson.Parse(LlamaConfigJson.ParseObject(o.ToJsonString(), "video_config.json"), "video_config.json");
        Assert.True(back.Aggregator.PerPosition);
        Assert.Equal(260, back.Aggregator.Latents);
        var coded = pp with { Aggregator = pp.Aggregator with { PlaceCode = true, TilesPerFrame = 4 } };
        var codedBack = VideoConfigJson.Parse(VideoConfigJson.ToJson(coded), "video_config.json");
        Assert.Equal(coded.Aggregator with { NumLatents = 260 }, codedBack.Aggregator);
        Assert.False(VideoConfigJson.Parse(o, "video_config.json").Aggregator.PlaceCode);
        ((JsonObject)o["aggregator"]!).Remove("merge");
        ((JsonObject)o["aggregator"]!)["num_latents"] = 16;
        Assert.Equal("latents", VideoConfigJson.Parse(o, "old/video_config.json").Aggregator.Merge);
        ((JsonObject)o["aggregator"]!)["merge"] = "max";
        var e = Assert.Throws<ConfigException>(() => VideoConfigJson.Parse(o, "bad/video_config.json").Validate(6, new[] { 1, 4 }, "bad/video_config.json"));
        Assert.Contains("merge = 'max'", e.Message);
    }
}

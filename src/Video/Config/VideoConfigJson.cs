using System.Text.Json.Nodes;
using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Video;

/// <summary>
/// Reads and writes <c>video_config.json</c>, the video adapter's settings stored beside the image-text model's
/// <c>config.json</c>. Parsing is strict: unknown fields and wrong types are errors naming the file and field.
/// </summary>
public static class VideoConfigJson
{
    /// <summary>File name inside a model folder.</summary>
    public const string FileName = "video_config.json";

    static readonly HashSet<string> Top = new() { "num_frames", "video_token_id", "cross_attention_layers", "aggregator" };
    static readonly HashSet<string> Agg = new()
    {
        "dim", "tokens_per_frame", "num_latents", "num_layers", "num_heads", "head_dim", "ffn_multiplier",
        "frames_per_group", "max_frames_per_group", "max_groups", "layer_norm_eps", "merge", "place_code", "tiles_per_frame",
    };

    /// <summary>Reads <paramref name="path"/>.</summary>
    public static VideoConfig Read(string path) => Parse(LlamaConfigJson.ReadObject(path), path);

    /// <summary>Builds the config from a parsed object; <paramref name="source"/> names it in errors.</summary>
    public static VideoConfig Parse(JsonObject o, string source)
    {
        foreach (var kv in o) if (!Top.Contains(kv.Key)) throw new ConfigException($"{source}: unknown field '{kv.Key}'.");
        var a = o["aggregator"] as JsonObject ?? throw new ConfigException($"{source}: 'aggregator' (object) is missing.");
        string s = source + " aggregator";
        foreach (var kv in a) if (!Agg.Contains(kv.Key)) throw new ConfigException($"{s}: unknown field '{kv.Key}'.");
        var d = new TemporalAggregatorConfig { Dim = 1, TokensPerFrame = 1 };
        var agg = new TemporalAggregatorConfig
        {
            Dim = LlamaConfigJson.ReqInt(a, "dim", s),
            TokensPerFrame = LlamaConfigJson.ReqInt(a, "tokens_per_frame", s),
            NumLatents = LlamaConfigJson.Int(a, "num_latents", s),
            NumLayers = LlamaConfigJson.Int(a, "num_layers", s) ?? d.NumLayers,
            NumHeads = LlamaConfigJson.Int(a, "num_heads", s) ?? d.NumHeads,
            HeadDim = LlamaConfigJson.Int(a, "head_dim", s) ?? d.HeadDim,
            FfnMultiplier = LlamaConfigJson.Int(a, "ffn_multiplier", s) ?? d.FfnMultiplier,
            FramesPerGroup = LlamaConfigJson.Int(a, "frames_per_group", s) ?? d.FramesPerGroup,
            MaxFramesPerGroup = LlamaConfigJson.Int(a, "max_frames_per_group", s) ?? d.MaxFramesPerGroup,
            MaxGroups = LlamaConfigJson.Int(a, "max_groups", s) ?? d.MaxGroups,
            LayerNormEps = LlamaConfigJson.Num(a, "layer_norm_eps", s) ?? d.LayerNormEps,
            Merge = LlamaConfigJson.Str(a, "merge", s) ?? d.Merge,
            PlaceCode = LlamaConfigJson.Bool(a, "place_code", s) ?? d.PlaceCode,
            TilesPerFrame = LlamaConfigJson.Int(a, "tiles_per_frame", s),
        };
        return new VideoConfig
        {
            Aggregator = agg,
            NumFrames = LlamaConfigJson.Int(o, "num_frames", source) ?? 64,
            VideoTokenId = LlamaConfigJson.Int(o, "video_token_id", source) ?? VideoConfig.DefaultVideoTokenId,
            CrossAttentionLayers = o.ContainsKey("cross_attention_layers")
                ? LlamaConfigJson.IntList(o["cross_attention_layers"], "cross_attention_layers", source)
                : null,
        };
    }

    /// <summary>The JSON object for <paramref name="c"/> (every field written).</summary>
    public static JsonObject ToJson(VideoConfig c)
    {
        var a = c.Aggregator;
        var o = new JsonObject
        {
            ["num_frames"] = c.NumFrames,
            ["video_token_id"] = c.VideoTokenId,
            ["aggregator"] = new JsonObject
            {
                ["dim"] = a.Dim, ["tokens_per_frame"] = a.TokensPerFrame, ["num_latents"] = a.Latents, ["num_layers"] = a.NumLayers,
                ["num_heads"] = a.NumHeads, ["head_dim"] = a.HeadDim, ["ffn_multiplier"] = a.FfnMultiplier,
                ["frames_per_group"] = a.FramesPerGroup, ["max_frames_per_group"] = a.MaxFramesPerGroup, ["max_groups"] = a.MaxGroups, ["layer_norm_eps"] = a.LayerNormEps,
                ["merge"] = a.Merge, ["place_code"] = a.PlaceCode,
            },
        };
        if (a.TilesPerFrame is { } tiles) ((JsonObject)o["aggregator"]!)["tiles_per_frame"] = tiles;
        if (c.CrossAttentionLayers is { } b) o["cross_attention_layers"] = new JsonArray(b.Select(x => (JsonNode)x).ToArray());
        return o;
    }
}

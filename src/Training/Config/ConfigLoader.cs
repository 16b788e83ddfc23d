using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Training;

/// <summary>
/// Builds a <see cref="TrainConfig"/>: recipe defaults, then the config file (JSON, <c>//</c> comments allowed), then
/// <c>--set dotted.key=value</c> overrides. Strict: an unknown key or a value of the wrong type is a
/// <see cref="ConfigException"/> naming the file and the key.
/// </summary>
public static class ConfigLoader
{
    /// <summary>Serializer settings of config files (snake_case, unknown members rejected).</summary>
    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    /// <summary>Loads <paramref name="path"/> (may be null) over <paramref name="defaults"/> and applies <paramref name="sets"/> (<c>key=value</c>).</summary>
    public static TrainConfig Load(TrainConfig defaults, string? path, IEnumerable<string>? sets = null)
    {
        var root = JsonSerializer.SerializeToNode(defaults, Json)!.AsObject();
        string source = path ?? "defaults";
        if (path is not null)
        {
            if (!File.Exists(path)) throw new ConfigException($"{path}: config file not found.");
            JsonNode? file;
            try { file = JsonNode.Parse(File.ReadAllText(path), null, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }); }
            catch (JsonException e) { throw new ConfigException($"{path}: invalid JSON: {e.Message}", e); }
            if (file is not JsonObject fo) throw new ConfigException($"{path}: the config must be a JSON object.");
            Merge(root, fo, path, "");
        }
        foreach (var s in sets ?? Array.Empty<string>()) ApplySet(root, s);
        TrainConfig cfg;
        try { cfg = root.Deserialize<TrainConfig>(Json) ?? throw new ConfigException($"{source}: empty config."); }
        catch (JsonException e) { throw new ConfigException($"{source}: {e.Message}", e); }
        if (path is not null) cfg = ResolvePaths(cfg, Path.GetDirectoryName(Path.GetFullPath(path))!);
        Validate(cfg, source);
        return cfg;
    }

    /// <summary>The config as indented JSON (the form written to <c>OUT/config.json</c>).</summary>
    public static string ToJson(TrainConfig config) => JsonSerializer.Serialize(config, Json);

    static void Merge(JsonObject target, JsonObject overlay, string source, string prefix)
    {
        foreach (var (key, value) in overlay.ToList())
        {
            string full = prefix + key;
            if (!target.ContainsKey(key)) throw new ConfigException($"{source}: unknown config key '{full}'.");
            if (value is JsonObject vo && target[key] is JsonObject to) { Merge(to, vo, source, full + "."); continue; }
            overlay.Remove(key);
            target[key] = value;
        }
    }

    static void ApplySet(JsonObject root, string set)
    {
        int eq = set.IndexOf('=');
        if (eq <= 0) throw new ConfigException($"--set '{set}': expected key=value (e.g. optim.lr=1e-4).");
        string key = set[..eq].Trim(), raw = set[(eq + 1)..];
        var parts = key.Split('.');
        JsonObject node = root;
        for (int i = 0; i < parts.Length - 1; i++)
        {
            if (node[parts[i]] is not JsonObject child) throw new ConfigException($"--set '{set}': unknown config section '{string.Join('.', parts[..(i + 1)])}'.");
            node = child;
        }
        if (!node.ContainsKey(parts[^1])) throw new ConfigException($"--set '{set}': unknown config key '{key}'.");
        JsonNode? value;
        try { value = JsonNode.Parse(raw); }
        catch (JsonException) { value = JsonValue.Create(raw); }
        // A bare word that parses as JSON of another kind (e.g. null) is fine; a string stays a string.
        node[parts[^1]] = value;
    }

    static string? Resolve(string? p, string dir) => string.IsNullOrEmpty(p) || Path.IsPathRooted(p) ? p : Path.GetFullPath(Path.Combine(dir, p));

    static TrainConfig ResolvePaths(TrainConfig c, string dir) => c with
    {
        Data = c.Data with { Train = Resolve(c.Data.Train, dir) ?? "", Eval = Resolve(c.Data.Eval, dir) },
        Model = c.Model with { InitFrom = Resolve(c.Model.InitFrom, dir) },
        Loss = c.Loss with { Reference = Resolve(c.Loss.Reference, dir) },
        Media = c.Media with { EncoderFrom = Resolve(c.Media.EncoderFrom, dir), VisionFrom = Resolve(c.Media.VisionFrom, dir) },
        Tokenizer = c.Tokenizer is "llama3" or "bytes" ? c.Tokenizer : Resolve(c.Tokenizer, dir)!,
    };

    static void Validate(TrainConfig c, string source)
    {
        void Fail(string key, object? v, string expected) => throw new ConfigException($"{source}: {key} = {v}: expected {expected}.");
        if (c.Optim.Schedule is not ("cosine" or "linear" or "constant")) Fail("optim.schedule", c.Optim.Schedule, "cosine, linear or constant");
        if (c.Optim.Lr < 0) Fail("optim.lr", c.Optim.Lr, "≥ 0");
        if (c.Optim.TotalSteps <= 0) Fail("optim.total_steps", c.Optim.TotalSteps, "> 0");
        if (c.Optim.WarmupSteps < 0 || c.Optim.WarmupSteps > c.Optim.TotalSteps) Fail("optim.warmup_steps", c.Optim.WarmupSteps, "0 … total_steps");
        if (c.Optim.Beta1 is < 0 or >= 1) Fail("optim.beta1", c.Optim.Beta1, "in [0, 1)");
        if (c.Optim.Beta2 is < 0 or >= 1) Fail("optim.beta2", c.Optim.Beta2, "in [0, 1)");
        if (c.Batch.Unit is not ("tokens" or "samples")) Fail("batch.unit", c.Batch.Unit, "tokens or samples");
        if (c.Batch.Micro <= 0) Fail("batch.micro", c.Batch.Micro, "> 0");
        if (c.Batch.Global <= 0) Fail("batch.global", c.Batch.Global, "> 0");
        if (c.Data.SeqLen < 2) Fail("data.seq_len", c.Data.SeqLen, "≥ 2");
        if (c.Data.Prefetch < 1) Fail("data.prefetch", c.Data.Prefetch, "≥ 1");
        if (c.Data.Readers < 0) Fail("data.readers", c.Data.Readers, "≥ 0 (0 = the world size)");
        if (c.Data.ShuffleBuffer < 1) Fail("data.shuffle_buffer", c.Data.ShuffleBuffer, "≥ 1");
        if (c.Data.Workers < 0) Fail("data.workers", c.Data.Workers, "≥ 0 (0 = min(4, cores))");
        if (c.Train.KeepLast < 1) Fail("train.keep_last", c.Train.KeepLast, "≥ 1");
        if (c.Train.SaveEvery < 0) Fail("train.save_every", c.Train.SaveEvery, "≥ 0");
        if (c.Train.Dtype is not ("f32" or "bf16")) Fail("train.dtype", c.Train.Dtype, "f32 or bf16");
        if (c.Train.Devices is not null && c.Recipe is not ("text-pretrain" or "sft" or "dpo" or "reward-model"))
            Fail("train.devices", c.Train.Devices, "unset for this recipe (layer placement is available to the text recipes)");
        if (c.Train.Devices is { } devs && devs.Trim() != "auto")
        {
            try { _ = DeviceList(devs); }
            catch (ArgumentException) { Fail("train.devices", devs, "auto or a comma-separated list of devices (cpu, cuda, cuda:N)"); }
        }
        if (c.Loss.DpoBeta <= 0) Fail("loss.dpo_beta", c.Loss.DpoBeta, "> 0");
        if (c.Media.MaxTiles < 1) Fail("media.max_tiles", c.Media.MaxTiles, "≥ 1");
        if (c.Media.NumFrames < 1) Fail("media.num_frames", c.Media.NumFrames, "≥ 1");
        if (c.Media.FramesPerGroup < 1) Fail("media.frames_per_group", c.Media.FramesPerGroup, "≥ 1");
        if (c.Media.MaskProbability is <= 0 or >= 1) Fail("media.mask_probability", c.Media.MaskProbability, "in (0, 1)");
        if (c.Media.MaskSpan < 1) Fail("media.mask_span", c.Media.MaskSpan, "≥ 1");
        if (c.Media.Codebooks < 1) Fail("media.codebooks", c.Media.Codebooks, "≥ 1");
        if (c.Media.CodebookSize < 2) Fail("media.codebook_size", c.Media.CodebookSize, "≥ 2");
        if (c.Media.MaxAudioFrames < 8) Fail("media.max_audio_frames", c.Media.MaxAudioFrames, "≥ 8");
        foreach (var f in c.Media.SpeedPerturb)
            if (!(f >= 0.5 && f <= 2)) Fail("media.speed_perturb", f, "rates in [0.5, 2]");
        if (c.Media.FrameCacheMb < 0) Fail("media.frame_cache_mb", c.Media.FrameCacheMb, "≥ 0");
        if (!(c.Media.GlyphLossWeight >= 0 && double.IsFinite(c.Media.GlyphLossWeight))) Fail("media.glyph_loss_weight", c.Media.GlyphLossWeight, "finite and ≥ 0");
        if (!(c.Media.ShapeLossWeight >= 0 && double.IsFinite(c.Media.ShapeLossWeight))) Fail("media.shape_loss_weight", c.Media.ShapeLossWeight, "finite and ≥ 0");
        if (!(c.Media.AnchorLossWeight >= 0 && double.IsFinite(c.Media.AnchorLossWeight))) Fail("media.anchor_loss_weight", c.Media.AnchorLossWeight, "finite and ≥ 0");
        if (c.Media.AnchorFrom is { } anchorFrom && c.Media.AnchorLossWeight == 0)
            Fail("media.anchor_from", anchorFrom, "set only with media.anchor_loss_weight > 0");
        if (c.Media.GlyphHead is not (MediaSection.GlyphHeadOutput or MediaSection.GlyphHeadLinear)) Fail("media.glyph_head", c.Media.GlyphHead, "output or linear");
        if (c.Media.AggregatorMerge is { } merge && merge is not (Video.TemporalAggregatorConfig.MergeLatents or Video.TemporalAggregatorConfig.MergePerPosition))
            Fail("media.aggregator_merge", merge, "latents or per_position");
    }

    /// <summary>Parses a comma-separated device list (<c>cuda:0,cuda:1</c>).</summary>
    public static IReadOnlyList<TorchSharp.torch.Device> DeviceList(string list)
    {
        var parts = list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0) throw new ArgumentException("empty device list.");
        return parts.Select(DeviceSpec.Parse).ToList();
    }
}

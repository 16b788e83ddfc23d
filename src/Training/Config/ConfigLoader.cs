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
            if (!target.ContainsKey(key)) throw new ConfigException($"{source}: {UnknownKey(target, full, value)}");
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
            if (node[parts[i]] is not JsonObject child) throw new ConfigException($"--set '{set}': {UnknownKey(node, string.Join('.', parts[..(i + 1)]), null, parts[(i + 1)..])}");
            node = child;
        }
        if (!node.ContainsKey(parts[^1])) throw new ConfigException($"--set '{set}': {UnknownKey(node, key, null)}");
        JsonNode? value;
        try { value = JsonNode.Parse(raw); }
        catch (JsonException) { value = JsonValue.Create(raw); }
        // A bare word that parses as JSON of another kind (e.g. null) is fine; a string stays a string.
        node[parts[^1]] = value;
    }

    /// <summary>Where each key of the former <c>media</c> section went (configs written before the per-modality sections).</summary>
    static readonly Dictionary<string, string> MovedMediaKeys = new(StringComparer.Ordinal)
    {
        ["max_tiles"] = "vision.max_tiles", ["cross_attention_layers"] = "vision.num_cross_attention_layers",
        ["anchor_loss_weight"] = "vision.anchor_loss_weight", ["anchor_from"] = "vision.anchor_from",
        ["glyph_loss_weight"] = "vision.auxiliary_losses (the demo's \"glyph\" loss, registered by mm-demo)",
        ["glyph_head"] = "vision.auxiliary_losses (the demo's \"glyph\" or \"glyph_linear\" loss, registered by mm-demo)",
        ["shape_loss_weight"] = "vision.auxiliary_losses (the demo's \"shape\" loss, registered by mm-demo)",
        ["num_frames"] = "video.num_frames", ["frames_per_group"] = "video.frames_per_group", ["aggregator_merge"] = "video.aggregator_merge",
        ["aggregator_place_code"] = "video.aggregator_place_code", ["video_from_image_layers"] = "video.video_from_image_layers",
        ["video_layers_before"] = "video.video_layers_before", ["frame_cache_mb"] = "video.frame_cache_mb", ["vision_from"] = "video.vision_from",
        ["max_audio_frames"] = "speech.max_audio_frames", ["encoder_from"] = "speech.finetune.encoder_from", ["language"] = "speech.finetune.language",
        ["spec_augment"] = "speech.finetune.spec_augment", ["speed_perturb"] = "speech.finetune.speed_perturb",
        ["mask_probability"] = "speech.best_rq.mask_probability", ["mask_span"] = "speech.best_rq.mask_span", ["codebooks"] = "speech.best_rq.codebooks",
        ["codebook_size"] = "speech.best_rq.codebook_size", ["stats_utterances"] = "speech.best_rq.stats_utterances",
    };

    /// <summary>Sections (and subsections) that exist for some recipes only.</summary>
    static readonly string[] OptionalSections = { "vision", "video", "speech", "speech.best_rq", "speech.finetune" };

    // The message for a key the recipe's config does not have: the former media section's keys name their new place; a
    // section of another recipe says so; anything else is unknown.
    static string UnknownKey(JsonObject target, string full, JsonNode? value, string[]? rest = null)
    {
        if (full == "media" || full.StartsWith("media.", StringComparison.Ordinal))
        {
            var keys = value is JsonObject mo ? mo.Select(p => p.Key).ToList()
                : rest is { Length: > 0 } ? new List<string> { rest[0] } : full.Length > 6 ? new List<string> { full[6..] } : new List<string>();
            string section = target.ContainsKey("vision") ? "vision" : target.ContainsKey("video") ? "video" : target.ContainsKey("speech") ? "speech" : "";
            var moves = keys.Select(k => $"media.{k} → " + (k == "preset" ? (section.Length > 0 ? section + ".preset" : "(no multimodal section in this recipe)")
                : MovedMediaKeys.TryGetValue(k, out var to) ? to : "(unknown)"));
            return $"the 'media' section was split into per-modality sections (vision, video, speech): {string.Join("; ", moves)}.";
        }
        if (OptionalSections.Contains(full)) return $"this recipe's config has no '{full}' section (it belongs to another recipe).";
        return $"unknown config key '{full}'.";
    }

    static string? Resolve(string? p, string dir) => string.IsNullOrEmpty(p) || Path.IsPathRooted(p) ? p : Path.GetFullPath(Path.Combine(dir, p));

    static TrainConfig ResolvePaths(TrainConfig c, string dir) => c with
    {
        Data = c.Data with { Train = Resolve(c.Data.Train, dir) ?? "", Eval = Resolve(c.Data.Eval, dir) },
        Model = c.Model with { InitFrom = Resolve(c.Model.InitFrom, dir) },
        Loss = c.Loss with { Reference = Resolve(c.Loss.Reference, dir) },
        Vision = c.Vision is { } v ? v with { AnchorFrom = Resolve(v.AnchorFrom, dir), LanguageModelFrom = Resolve(v.LanguageModelFrom, dir) } : null,
        Video = c.Video is { } vd ? vd with { VisionFrom = Resolve(vd.VisionFrom, dir) } : null,
        Speech = c.Speech is { Finetune: { } f } sp ? sp with { Finetune = f with { EncoderFrom = Resolve(f.EncoderFrom, dir) } } : c.Speech,
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
        if (!(c.Loss.ReferenceEma >= 0 && c.Loss.ReferenceEma <= 1)) Fail("loss.reference_ema", c.Loss.ReferenceEma, "in [0, 1] (1 = a frozen reference)");
        if (c.Loss.ReferenceUpdateEvery < 0) Fail("loss.reference_update_every", c.Loss.ReferenceUpdateEvery, "≥ 0 (0 = never)");
        if (c.Vision is { } v)
        {
            if (v.MaxTiles < 1) Fail("vision.max_tiles", v.MaxTiles, "≥ 1");
            if (v.NumCrossAttentionLayers is < 1) Fail("vision.num_cross_attention_layers", v.NumCrossAttentionLayers, "≥ 1 (or null: the preset's)");
            if (!(v.AnchorLossWeight >= 0 && double.IsFinite(v.AnchorLossWeight))) Fail("vision.anchor_loss_weight", v.AnchorLossWeight, "finite and ≥ 0");
            if (v.AnchorFrom is { } anchorFrom && v.AnchorLossWeight == 0) Fail("vision.anchor_from", anchorFrom, "set only with vision.anchor_loss_weight > 0");
            foreach (var a in v.AuxiliaryLosses)
            {
                if (a is null || string.IsNullOrWhiteSpace(a.Name)) Fail("vision.auxiliary_losses", a, "entries {\"name\": …, \"weight\": …}");
                if (!(a!.Weight >= 0 && double.IsFinite(a.Weight))) Fail($"vision.auxiliary_losses[{a.Name}].weight", a.Weight, "finite and ≥ 0");
            }
            var dup = v.AuxiliaryLosses.GroupBy(a => a.Name).FirstOrDefault(g => g.Count() > 1);
            if (dup is not null) Fail("vision.auxiliary_losses", dup.Key, "each loss named once");
        }
        if (c.Video is { } vd)
        {
            if (vd.NumFrames < 1) Fail("video.num_frames", vd.NumFrames, "≥ 1");
            if (vd.FramesPerGroup < 1) Fail("video.frames_per_group", vd.FramesPerGroup, "≥ 1");
            if (vd.FrameCacheMb < 0) Fail("video.frame_cache_mb", vd.FrameCacheMb, "≥ 0");
            if (vd.AggregatorMerge is { } merge && merge is not (Video.TemporalAggregatorConfig.MergeLatents or Video.TemporalAggregatorConfig.MergePerPosition))
                Fail("video.aggregator_merge", merge, "latents or per_position");
        }
        if (c.Speech is { } sp)
        {
            if (sp.MaxAudioFrames < 8) Fail("speech.max_audio_frames", sp.MaxAudioFrames, "≥ 8");
            if (sp.BestRq is { } b)
            {
                if (b.MaskProbability is <= 0 or >= 1) Fail("speech.best_rq.mask_probability", b.MaskProbability, "in (0, 1)");
                if (b.MaskSpan < 1) Fail("speech.best_rq.mask_span", b.MaskSpan, "≥ 1");
                if (b.Codebooks < 1) Fail("speech.best_rq.codebooks", b.Codebooks, "≥ 1");
                if (b.CodebookSize < 2) Fail("speech.best_rq.codebook_size", b.CodebookSize, "≥ 2");
            }
            foreach (var f in sp.Finetune?.SpeedPerturb ?? Array.Empty<double>())
                if (!(f >= 0.5 && f <= 2)) Fail("speech.finetune.speed_perturb", f, "rates in [0.5, 2]");
        }
    }

    /// <summary>Parses a comma-separated device list (<c>cuda:0,cuda:1</c>).</summary>
    public static IReadOnlyList<TorchSharp.torch.Device> DeviceList(string list)
    {
        var parts = list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0) throw new ArgumentException("empty device list.");
        return parts.Select(DeviceSpec.Parse).ToList();
    }
}

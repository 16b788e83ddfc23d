using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Llama3.Multimodal.Text;

/// <summary>
/// Reads and writes <see cref="LlamaConfig"/> as Hugging Face <c>config.json</c> and Meta <c>params.json</c>.
/// Parsing is strict: an unknown field, a field of the wrong type, a non-finite number or an unsupported feature
/// (biases, another activation, another rope type) is a <see cref="ConfigException"/> naming the file and field.
/// </summary>
public static class LlamaConfigJson
{
    /// <summary>Largest config file accepted (bytes).</summary>
    public const int MaxFileBytes = 4 << 20;

    static readonly HashSet<string> HfKnown = new(StringComparer.Ordinal)
    {
        "architectures", "attention_bias", "attention_dropout", "bos_token_id", "eos_token_id", "hidden_act", "hidden_size",
        "initializer_range", "intermediate_size", "max_position_embeddings", "mlp_bias", "model_type", "num_attention_heads",
        "num_hidden_layers", "num_key_value_heads", "pretraining_tp", "rms_norm_eps", "rope_scaling", "rope_theta",
        "tie_word_embeddings", "torch_dtype", "dtype", "transformers_version", "use_cache", "vocab_size", "head_dim", "pad_token_id",
        "_name_or_path", "extra_embedding_rows", "quantization_config", "output_attentions", "output_hidden_states", "return_dict",
    };

    static readonly HashSet<string> MetaKnown = new(StringComparer.Ordinal)
    {
        "dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "ffn_dim_multiplier", "multiple_of", "norm_eps", "rope_theta",
        "use_scaled_rope", "rope_scaling_factor", "max_seq_len",
    };

    /// <summary>Options used for every JSON document this library reads (bounded nesting, no comments).</summary>
    public static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 64, AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Disallow };

    /// <summary>Reads a JSON file into a node, with size and depth limits and a clear error naming the file.</summary>
    public static JsonObject ReadObject(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new ConfigException($"{path}: file not found.");
        if (info.Length > MaxFileBytes) throw new ConfigException($"{path}: {info.Length} bytes is larger than the {MaxFileBytes}-byte limit for a config file.");
        return ParseObject(File.ReadAllText(path, Encoding.UTF8), path);
    }

    /// <summary>Parses JSON text that must be an object.</summary>
    public static JsonObject ParseObject(string text, string source)
    {
        try
        {
            JsonNode? n = JsonNode.Parse(text, documentOptions: DocumentOptions);
            Materialise(n);
            return n as JsonObject ?? throw new ConfigException($"{source}: the top level must be a JSON object.");
        }
        catch (Exception e) when (e is JsonException or ArgumentException or InvalidOperationException)
        {
            // ArgumentException: a key given twice; InvalidOperationException: invalid text inside strings.
            throw new ConfigException($"{source}: invalid JSON ({e.Message}).", e);
        }
    }

    /// <summary>
    /// Walks a parsed tree so that problems <see cref="JsonNode"/> reports lazily (duplicate keys, invalid strings)
    /// surface now, inside the caller's error handling (as ArgumentException / InvalidOperationException).
    /// </summary>
    public static void Materialise(JsonNode? n)
    {
        switch (n)
        {
            case JsonObject o: foreach (var kv in o) Materialise(kv.Value); break;
            case JsonArray a: foreach (var x in a) Materialise(x); break;
            case JsonValue v when v.GetValueKind() == JsonValueKind.String: _ = v.GetValue<string>(); break;
        }
    }

    /// <summary>Reads a Hugging Face <c>config.json</c> of a <c>LlamaForCausalLM</c> model.</summary>
    public static LlamaConfig ReadHuggingFace(string path) => FromHuggingFace(ReadObject(path), path);

    /// <summary>Reads a Meta <c>params.json</c>.</summary>
    public static LlamaConfig ReadMeta(string path) => FromMeta(ReadObject(path), path);

    /// <summary>Builds a config from a parsed HF config object (also used for the text part of vision configs).</summary>
    public static LlamaConfig FromHuggingFace(JsonObject o, string source, IReadOnlySet<string>? extraKnown = null)
    {
        foreach (var kv in o)
            if (!HfKnown.Contains(kv.Key) && (extraKnown == null || !extraKnown.Contains(kv.Key)))
                throw new ConfigException($"{source}: unknown field '{kv.Key}'.");
        if (Str(o, "model_type", source) is string mt && mt != "llama" && extraKnown == null)
            throw new ConfigException($"{source}: model_type '{mt}' is not 'llama'.");
        if (Bool(o, "attention_bias", source) == true) throw new ConfigException($"{source}: attention_bias = true is not a Llama 3 model (no biases).");
        if (Bool(o, "mlp_bias", source) == true) throw new ConfigException($"{source}: mlp_bias = true is not a Llama 3 model (no biases).");
        if (Str(o, "hidden_act", source) is string act && act != "silu") throw new ConfigException($"{source}: hidden_act '{act}' is not supported (Llama 3 uses silu).");
        if (Int(o, "pretraining_tp", source) is int tp && tp != 1) throw new ConfigException($"{source}: pretraining_tp = {tp} is not supported (only 1).");
        int hidden = ReqInt(o, "hidden_size", source);
        int heads = ReqInt(o, "num_attention_heads", source);
        if (Int(o, "head_dim", source) is int hdim && hdim != hidden / Math.Max(heads, 1))
            throw new ConfigException($"{source}: head_dim {hdim} differs from hidden_size/num_attention_heads = {hidden / Math.Max(heads, 1)}; Llama 3 has no such models.");
        var cfg = new LlamaConfig
        {
            HiddenSize = hidden,
            NumLayers = ReqInt(o, "num_hidden_layers", source),
            NumHeads = heads,
            NumKvHeads = Int(o, "num_key_value_heads", source) ?? heads,
            IntermediateSize = ReqInt(o, "intermediate_size", source),
            VocabSize = ReqInt(o, "vocab_size", source),
            ExtraEmbeddingRows = Int(o, "extra_embedding_rows", source) ?? 0,
            RmsNormEps = Num(o, "rms_norm_eps", source) ?? 1e-5,
            RopeTheta = Num(o, "rope_theta", source) ?? 10000.0,
            RopeScaling = ReadRopeScaling(o["rope_scaling"], source),
            MaxPositionEmbeddings = Int(o, "max_position_embeddings", source) ?? 8192,
            TieWordEmbeddings = Bool(o, "tie_word_embeddings", source) ?? false,
            BosTokenId = Int(o, "bos_token_id", source) ?? 128000,
            EosTokenIds = IntList(o["eos_token_id"], "eos_token_id", source) ?? new[] { 128001, 128008, 128009 },
            PadTokenId = Int(o, "pad_token_id", source) ?? 128004,
        };
        return cfg.Validate(source);
    }

    /// <summary>Builds a config from a parsed Meta params object.</summary>
    public static LlamaConfig FromMeta(JsonObject o, string source)
    {
        foreach (var kv in o)
            if (!MetaKnown.Contains(kv.Key)) throw new ConfigException($"{source}: unknown field '{kv.Key}'.");
        int dim = ReqInt(o, "dim", source);
        int heads = ReqInt(o, "n_heads", source);
        int multipleOf = Int(o, "multiple_of", source) ?? 256;
        if (multipleOf <= 0) throw new ConfigException($"{source}: multiple_of {multipleOf} must be > 0.");
        double? mult = Num(o, "ffn_dim_multiplier", source);
        bool scaled = Bool(o, "use_scaled_rope", source) ?? false;
        double factor = Num(o, "rope_scaling_factor", source) ?? 8.0;
        int vocab = ReqInt(o, "vocab_size", source);
        var cfg = new LlamaConfig
        {
            HiddenSize = dim,
            NumLayers = ReqInt(o, "n_layers", source),
            NumHeads = heads,
            NumKvHeads = Int(o, "n_kv_heads", source) ?? heads,
            IntermediateSize = LlamaConfig.FfnHiddenSize(dim, mult, multipleOf),
            VocabSize = vocab,
            RmsNormEps = Num(o, "norm_eps", source) ?? 1e-5,
            RopeTheta = Num(o, "rope_theta", source) ?? 500000.0,
            RopeScaling = scaled ? new RopeScaling(factor, 1, 4, 8192) : null,
            MaxPositionEmbeddings = Int(o, "max_seq_len", source) ?? (scaled ? 131072 : 8192),
            // Meta writes no tying flag; the 3.2 1B/3B consolidated files simply hold output.weight == tok_embeddings.weight.
            TieWordEmbeddings = false,
        };
        return cfg.Validate(source);
    }

    /// <summary>Writes an HF <c>config.json</c> object for <paramref name="c"/>.</summary>
    public static JsonObject ToHuggingFace(LlamaConfig c)
    {
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray("LlamaForCausalLM"),
            ["model_type"] = "llama",
            ["hidden_size"] = c.HiddenSize,
            ["num_hidden_layers"] = c.NumLayers,
            ["num_attention_heads"] = c.NumHeads,
            ["num_key_value_heads"] = c.NumKvHeads,
            ["head_dim"] = c.HeadDim,
            ["intermediate_size"] = c.IntermediateSize,
            ["vocab_size"] = c.VocabSize,
            ["rms_norm_eps"] = c.RmsNormEps,
            ["rope_theta"] = c.RopeTheta,
            ["max_position_embeddings"] = c.MaxPositionEmbeddings,
            ["tie_word_embeddings"] = c.TieWordEmbeddings,
            ["bos_token_id"] = c.BosTokenId,
            ["eos_token_id"] = new JsonArray(c.EosTokenIds.Select(i => (JsonNode)JsonValue.Create(i)).ToArray()),
            ["pad_token_id"] = c.PadTokenId,
            ["hidden_act"] = "silu",
            ["attention_bias"] = false,
            ["mlp_bias"] = false,
            ["torch_dtype"] = "float32",
        };
        if (c.ExtraEmbeddingRows != 0) o["extra_embedding_rows"] = c.ExtraEmbeddingRows;
        o["rope_scaling"] = c.RopeScaling is { } s
            ? new JsonObject
            {
                ["rope_type"] = "llama3",
                ["factor"] = s.Factor,
                ["low_freq_factor"] = s.LowFreqFactor,
                ["high_freq_factor"] = s.HighFreqFactor,
                ["original_max_position_embeddings"] = s.OriginalMaxPositionEmbeddings,
            }
            : null;
        return o;
    }

    /// <summary>Writes a Meta <c>params.json</c> object. The FFN size must follow Meta's rule; the multiplier is solved for.</summary>
    public static JsonObject ToMeta(LlamaConfig c)
    {
        (double? mult, int multipleOf) = SolveFfnRule(c);
        var o = new JsonObject
        {
            ["dim"] = c.HiddenSize,
            ["n_layers"] = c.NumLayers,
            ["n_heads"] = c.NumHeads,
            ["n_kv_heads"] = c.NumKvHeads,
            ["vocab_size"] = c.VocabSize,
            ["multiple_of"] = multipleOf,
            ["norm_eps"] = c.RmsNormEps,
            ["rope_theta"] = c.RopeTheta,
            ["use_scaled_rope"] = c.RopeScaling != null,
            ["max_seq_len"] = c.MaxPositionEmbeddings,
        };
        if (mult is double m) o["ffn_dim_multiplier"] = m;
        if (c.RopeScaling is { } s)
        {
            if (s.LowFreqFactor != 1 || s.HighFreqFactor != 4 || s.OriginalMaxPositionEmbeddings != 8192)
                throw new ConfigException("params.json can express only rope scaling with low_freq_factor 1, high_freq_factor 4, original 8192.");
            o["rope_scaling_factor"] = s.Factor;
        }
        return o;
    }

    static (double?, int) SolveFfnRule(LlamaConfig c)
    {
        int[] multiples = { 256, 1024, 4096, 128, 64, 32, 16, 8, 4, 2, 1 };
        foreach (int mo in multiples)
        {
            if (LlamaConfig.FfnHiddenSize(c.HiddenSize, null, mo) == c.IntermediateSize) return (null, mo);
            int baseH = (int)(2 * (4 * c.HiddenSize) / 3.0);
            // Try multipliers with two decimals, as Meta writes them.
            for (int k = 1; k <= 400; k++)
            {
                double m = k / 100.0;
                if (LlamaConfig.FfnHiddenSize(c.HiddenSize, m, mo) == c.IntermediateSize && (int)(m * baseH) <= c.IntermediateSize) return (m, mo);
            }
        }
        throw new ConfigException($"intermediate_size {c.IntermediateSize} cannot be written as Meta's ffn_dim_multiplier/multiple_of rule for dim {c.HiddenSize}.");
    }

    static RopeScaling? ReadRopeScaling(JsonNode? n, string source)
    {
        if (n == null) return null;
        if (n is not JsonObject o) throw new ConfigException($"{source}: rope_scaling must be an object or null.");
        string? type = Str(o, "rope_type", source) ?? Str(o, "type", source);
        if (type == "default") return null;
        if (type != "llama3") throw new ConfigException($"{source}: rope_scaling.rope_type '{type}' is not supported (only 'llama3').");
        foreach (var kv in o)
            if (kv.Key is not ("rope_type" or "type" or "factor" or "low_freq_factor" or "high_freq_factor" or "original_max_position_embeddings"))
                throw new ConfigException($"{source}: unknown field 'rope_scaling.{kv.Key}'.");
        return new RopeScaling(
            Num(o, "factor", source) ?? throw new ConfigException($"{source}: rope_scaling.factor is missing."),
            Num(o, "low_freq_factor", source) ?? throw new ConfigException($"{source}: rope_scaling.low_freq_factor is missing."),
            Num(o, "high_freq_factor", source) ?? throw new ConfigException($"{source}: rope_scaling.high_freq_factor is missing."),
            Int(o, "original_max_position_embeddings", source) ?? throw new ConfigException($"{source}: rope_scaling.original_max_position_embeddings is missing."));
    }

    /// <summary>Reads a required integer field.</summary>
    public static int ReqInt(JsonObject o, string key, string source) =>
        Int(o, key, source) ?? throw new ConfigException($"{source}: required field '{key}' is missing.");

    /// <summary>Reads an optional integer field (null when absent or JSON null).</summary>
    public static int? Int(JsonObject o, string key, string source)
    {
        if (!o.TryGetPropertyValue(key, out JsonNode? n) || n == null) return null;
        if (n is JsonValue v && v.GetValueKind() == JsonValueKind.Number)
        {
            double d = NumberOf(v);
            if (d == Math.Floor(d) && d >= int.MinValue && d <= int.MaxValue) return (int)d;
        }
        throw new ConfigException($"{source}: field '{key}' must be an integer, got {n.ToJsonString()}.");
    }

    /// <summary>Reads an optional finite number field.</summary>
    public static double? Num(JsonObject o, string key, string source)
    {
        if (!o.TryGetPropertyValue(key, out JsonNode? n) || n == null) return null;
        if (n is JsonValue v && v.GetValueKind() == JsonValueKind.Number)
        {
            double d = NumberOf(v);
            if (double.IsFinite(d)) return d;
        }
        throw new ConfigException($"{source}: field '{key}' must be a finite number, got {n.ToJsonString()}.");
    }

    static double NumberOf(JsonValue v) =>
        double.Parse(v.ToJsonString(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Reads an optional boolean field.</summary>
    public static bool? Bool(JsonObject o, string key, string source)
    {
        if (!o.TryGetPropertyValue(key, out JsonNode? n) || n == null) return null;
        if (n is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False) return v.GetValue<bool>();
        throw new ConfigException($"{source}: field '{key}' must be true or false, got {n.ToJsonString()}.");
    }

    /// <summary>Reads an optional string field.</summary>
    public static string? Str(JsonObject o, string key, string source)
    {
        if (!o.TryGetPropertyValue(key, out JsonNode? n) || n == null) return null;
        if (n is JsonValue v && v.GetValueKind() == JsonValueKind.String) return v.GetValue<string>();
        throw new ConfigException($"{source}: field '{key}' must be a string, got {n.ToJsonString()}.");
    }

    /// <summary>Reads an integer or a list of integers.</summary>
    public static int[]? IntList(JsonNode? n, string key, string source)
    {
        if (n == null) return null;
        if (n is JsonValue) return new[] { Int(new JsonObject { [key] = n.DeepClone() }, key, source)!.Value };
        if (n is JsonArray a)
            return a.Select(x => Int(new JsonObject { [key] = x?.DeepClone() }, key, source) ?? throw new ConfigException($"{source}: '{key}' holds a null.")).ToArray();
        throw new ConfigException($"{source}: field '{key}' must be an integer or a list of integers.");
    }
}

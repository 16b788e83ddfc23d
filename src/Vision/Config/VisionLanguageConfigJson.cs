using System.Text.Json.Nodes;
using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Vision;

/// <summary>
/// Reads and writes the Hugging Face <c>config.json</c> of <c>MllamaForConditionalGeneration</c> (top level +
/// <c>text_config</c> + <c>vision_config</c>). Strict: a field that is neither Mllama's nor one of the generic fields
/// every transformers config carries is a <see cref="ConfigException"/> naming the file and field.
/// </summary>
public static class VisionLanguageConfigJson
{
    // Fields transformers writes into every sub-config (PretrainedConfig defaults); they carry no model shape.
    static readonly HashSet<string> Generic = new(StringComparer.Ordinal)
    {
        "_name_or_path", "add_cross_attention", "architectures", "bad_words_ids", "begin_suppress_tokens", "bos_token_id",
        "chunk_size_feed_forward", "cross_attention_hidden_size", "decoder_start_token_id", "diversity_penalty", "do_sample",
        "early_stopping", "encoder_no_repeat_ngram_size", "eos_token_id", "exponential_decay_length_penalty", "finetuning_task",
        "forced_bos_token_id", "forced_eos_token_id", "id2label", "is_decoder", "is_encoder_decoder", "label2id",
        "length_penalty", "max_length", "min_length", "no_repeat_ngram_size", "num_beam_groups", "num_beams",
        "num_return_sequences", "output_attentions", "output_hidden_states", "output_scores", "pad_token_id", "prefix",
        "problem_type", "pruned_heads", "remove_invalid_values", "repetition_penalty", "return_dict", "return_dict_in_generate",
        "sep_token_id", "suppress_tokens", "task_specific_params", "temperature", "tf_legacy_loss", "tie_encoder_decoder",
        "tie_word_embeddings", "tokenizer_class", "top_k", "top_p", "torch_dtype", "dtype", "torchscript", "transformers_version",
        "typical_p", "use_bfloat16", "_attn_implementation_autoset", "model_type", "use_cache",
    };

    static readonly HashSet<string> TextExtra = new(StringComparer.Ordinal) { "cross_attention_layers", "dropout", "model_type" };

    static readonly HashSet<string> VisionKnown = new(StringComparer.Ordinal)
    {
        "attention_heads", "num_attention_heads", "hidden_act", "hidden_size", "image_size", "initializer_range",
        "intermediate_layers_indices", "intermediate_size", "max_num_tiles", "norm_eps", "num_channels", "num_global_layers",
        "num_hidden_layers", "patch_size", "supported_aspect_ratios", "vision_output_dim",
    };

    static readonly HashSet<string> TopKnown = new(StringComparer.Ordinal) { "image_token_index", "text_config", "vision_config", "quantization_config" };

    /// <summary>Reads <c>config.json</c>.</summary>
    public static VisionLanguageConfig Read(string path) => Parse(LlamaConfigJson.ReadObject(path), path);

    /// <summary>Builds the config from a parsed <c>config.json</c> object; <paramref name="source"/> names it in errors.</summary>
    public static VisionLanguageConfig Parse(JsonObject o, string source)
    {
        // Re-read from text so values built in memory (JsonValue<int> etc.) behave like parsed JSON elements.
        o = LlamaConfigJson.ParseObject(o.ToJsonString(), source);
        foreach (var kv in o)
            if (!TopKnown.Contains(kv.Key) && !Generic.Contains(kv.Key)) throw new ConfigException($"{source}: unknown field '{kv.Key}'.");
        if (LlamaConfigJson.Str(o, "model_type", source) is string mt && mt != "mllama")
            throw new ConfigException($"{source}: model_type '{mt}' is not 'mllama'.");
        var textObj = o["text_config"] as JsonObject ?? throw new ConfigException($"{source}: 'text_config' (object) is missing.");
        var visionObj = o["vision_config"] as JsonObject ?? throw new ConfigException($"{source}: 'vision_config' (object) is missing.");
        string ts = source + " text_config";
        if (LlamaConfigJson.Str(textObj, "model_type", ts) is string tmt && tmt != "mllama_text_model")
            throw new ConfigException($"{ts}: model_type '{tmt}' is not 'mllama_text_model'.");
        if (LlamaConfigJson.Num(textObj, "dropout", ts) is double dr && dr != 0)
            throw new ConfigException($"{ts}: dropout {dr} is not supported (only 0).");
        var textFields = new JsonObject();
        foreach (var kv in textObj)
            if (!Generic.Contains(kv.Key) || kv.Key is "bos_token_id" or "eos_token_id" or "pad_token_id" or "tie_word_embeddings" or "model_type" or "torch_dtype" or "dtype")
                textFields[kv.Key] = kv.Value?.DeepClone();
        var text = LlamaConfigJson.FromHuggingFace(textFields, ts, TextExtra) with { ExtraEmbeddingRows = VisionLanguageConfig.ExtraEmbeddingRows };
        var cross = LlamaConfigJson.IntList(textObj["cross_attention_layers"], "cross_attention_layers", ts)
            ?? throw new ConfigException($"{ts}: required field 'cross_attention_layers' is missing.");
        var vision = ParseVision(visionObj, source + " vision_config");
        var cfg = new VisionLanguageConfig
        {
            Text = text,
            Vision = vision,
            CrossAttentionLayers = cross,
            ImageTokenIndex = LlamaConfigJson.Int(o, "image_token_index", source) ?? 128256,
        };
        return cfg.Validate(source);
    }

    static VisionConfig ParseVision(JsonObject o, string source)
    {
        foreach (var kv in o)
            if (!VisionKnown.Contains(kv.Key) && !Generic.Contains(kv.Key)) throw new ConfigException($"{source}: unknown field '{kv.Key}'.");
        if (LlamaConfigJson.Str(o, "model_type", source) is string mt && mt != "mllama_vision_model")
            throw new ConfigException($"{source}: model_type '{mt}' is not 'mllama_vision_model'.");
        if (LlamaConfigJson.Str(o, "hidden_act", source) is string act && act != "gelu")
            throw new ConfigException($"{source}: hidden_act '{act}' is not supported (the encoder uses exact 'gelu').");
        int? heads = LlamaConfigJson.Int(o, "attention_heads", source);
        int? heads2 = LlamaConfigJson.Int(o, "num_attention_heads", source);
        if (heads is int a && heads2 is int b && a != b)
            throw new ConfigException($"{source}: attention_heads {a} and num_attention_heads {b} disagree.");
        var d = new VisionConfig();
        int maxTiles = LlamaConfigJson.Int(o, "max_num_tiles", source) ?? d.MaxNumTiles;
        var ratios = ReadRatios(o["supported_aspect_ratios"], source) ?? VisionConfig.AspectRatiosFor(maxTiles);
        var cfg = new VisionConfig
        {
            ImageSize = LlamaConfigJson.Int(o, "image_size", source) ?? d.ImageSize,
            PatchSize = LlamaConfigJson.Int(o, "patch_size", source) ?? d.PatchSize,
            NumChannels = LlamaConfigJson.Int(o, "num_channels", source) ?? d.NumChannels,
            HiddenSize = LlamaConfigJson.Int(o, "hidden_size", source) ?? d.HiddenSize,
            AttentionHeads = heads ?? heads2 ?? d.AttentionHeads,
            IntermediateSize = LlamaConfigJson.Int(o, "intermediate_size", source) ?? d.IntermediateSize,
            NumHiddenLayers = LlamaConfigJson.Int(o, "num_hidden_layers", source) ?? d.NumHiddenLayers,
            NumGlobalLayers = LlamaConfigJson.Int(o, "num_global_layers", source) ?? d.NumGlobalLayers,
            IntermediateLayersIndices = LlamaConfigJson.IntList(o["intermediate_layers_indices"], "intermediate_layers_indices", source) ?? d.IntermediateLayersIndices,
            NormEps = LlamaConfigJson.Num(o, "norm_eps", source) ?? d.NormEps,
            MaxNumTiles = maxTiles,
            SupportedAspectRatios = ratios,
            InitializerRange = LlamaConfigJson.Num(o, "initializer_range", source) ?? d.InitializerRange,
        };
        cfg.Validate(source);
        if (LlamaConfigJson.Int(o, "vision_output_dim", source) is int od && od != cfg.OutputDim)
            throw new ConfigException($"{source}: vision_output_dim {od} differs from hidden_size·(1 + intermediate layers) = {cfg.OutputDim}.");
        return cfg;
    }

    static IReadOnlyList<(int H, int W)>? ReadRatios(JsonNode? n, string source)
    {
        if (n is null) return null;
        if (n is not JsonArray arr) throw new ConfigException($"{source}: supported_aspect_ratios must be a list of [h, w] pairs.");
        var list = new List<(int, int)>();
        foreach (var item in arr)
        {
            var pair = LlamaConfigJson.IntList(item, "supported_aspect_ratios", source);
            if (item is not JsonArray || pair is null || pair.Length != 2) throw new ConfigException($"{source}: supported_aspect_ratios entry {item?.ToJsonString()} is not an [h, w] pair.");
            list.Add((pair[0], pair[1]));
        }
        return list;
    }

    /// <summary>Writes <paramref name="c"/> as an HF <c>config.json</c> object.</summary>
    public static JsonObject ToHuggingFace(VisionLanguageConfig c, string torchDtype = "float32")
    {
        var text = LlamaConfigJson.ToHuggingFace(c.Text);
        text.Remove("architectures");
        text.Remove("extra_embedding_rows");
        text.Remove("head_dim");
        text.Remove("attention_bias");
        text.Remove("mlp_bias");
        text["model_type"] = "mllama_text_model";
        text["cross_attention_layers"] = new JsonArray(c.CrossAttentionLayers.Select(i => (JsonNode)JsonValue.Create(i)).ToArray());
        text["dropout"] = 0.0;
        text["torch_dtype"] = torchDtype;
        var v = c.Vision;
        var vision = new JsonObject
        {
            ["model_type"] = "mllama_vision_model",
            ["hidden_act"] = "gelu",
            ["image_size"] = v.ImageSize,
            ["patch_size"] = v.PatchSize,
            ["num_channels"] = v.NumChannels,
            ["hidden_size"] = v.HiddenSize,
            ["attention_heads"] = v.AttentionHeads,
            ["intermediate_size"] = v.IntermediateSize,
            ["num_hidden_layers"] = v.NumHiddenLayers,
            ["num_global_layers"] = v.NumGlobalLayers,
            ["intermediate_layers_indices"] = new JsonArray(v.IntermediateLayersIndices.Select(i => (JsonNode)JsonValue.Create(i)).ToArray()),
            ["norm_eps"] = v.NormEps,
            ["max_num_tiles"] = v.MaxNumTiles,
            ["supported_aspect_ratios"] = new JsonArray(v.SupportedAspectRatios.Select(r => (JsonNode)new JsonArray(r.H, r.W)).ToArray()),
            ["vision_output_dim"] = v.OutputDim,
            ["initializer_range"] = v.InitializerRange,
            ["torch_dtype"] = torchDtype,
        };
        return new JsonObject
        {
            ["architectures"] = new JsonArray("MllamaForConditionalGeneration"),
            ["model_type"] = "mllama",
            ["image_token_index"] = c.ImageTokenIndex,
            ["text_config"] = text,
            ["vision_config"] = vision,
            ["torch_dtype"] = torchDtype,
        };
    }
}

using System.Text.Json.Nodes;
using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Speech;

/// <summary>
/// <c>config.json</c> of a speech model folder: <c>{"model_type": "llama3_speech", "text_config": {HF Llama config},
/// "speech_encoder": {…}, "speech_adapter": {…}, "speech_start_token": …, "speech_end_token": …}</c>. Parsing is strict:
/// unknown or mistyped fields are errors naming the file.
/// </summary>
public static class SpeechConfigJson
{
    /// <summary>The <c>model_type</c> value.</summary>
    public const string ModelType = "llama3_speech";

    static readonly HashSet<string> TopKnown = new(StringComparer.Ordinal)
        { "model_type", "text_config", "speech_encoder", "speech_adapter", "speech_start_token", "speech_end_token", "torch_dtype", "quantization_config" };
    static readonly HashSet<string> EncKnown = new(StringComparer.Ordinal)
        { "mel_bins", "stack_frames", "dim", "num_layers", "num_heads", "ffn_dim", "conv_kernel", "rope_theta", "layer_norm_eps", "max_frames" };
    static readonly HashSet<string> AdKnown = new(StringComparer.Ordinal)
        { "input_dim", "dim", "num_heads", "ffn_dim", "conv_kernel", "conv_stride", "output_dim", "rope_theta", "layer_norm_eps", "max_frames" };

    /// <summary>Serialises <paramref name="c"/>.</summary>
    public static JsonObject ToJson(SpeechModelConfig c, string torchDtype) => new()
    {
        ["model_type"] = ModelType,
        ["torch_dtype"] = torchDtype,
        ["text_config"] = LlamaConfigJson.ToHuggingFace(c.Text),
        ["speech_encoder"] = new JsonObject
        {
            ["mel_bins"] = c.Encoder.MelBins, ["stack_frames"] = c.Encoder.StackFrames, ["dim"] = c.Encoder.Dim,
            ["num_layers"] = c.Encoder.NumLayers, ["num_heads"] = c.Encoder.NumHeads, ["ffn_dim"] = c.Encoder.FfnDim,
            ["conv_kernel"] = c.Encoder.ConvKernel, ["rope_theta"] = c.Encoder.RopeTheta, ["layer_norm_eps"] = c.Encoder.LayerNormEps,
            ["max_frames"] = c.Encoder.MaxFrames,
        },
        ["speech_adapter"] = new JsonObject
        {
            ["input_dim"] = c.Adapter.InputDim, ["dim"] = c.Adapter.Dim, ["num_heads"] = c.Adapter.NumHeads, ["ffn_dim"] = c.Adapter.FfnDim,
            ["conv_kernel"] = c.Adapter.ConvKernel, ["conv_stride"] = c.Adapter.ConvStride, ["output_dim"] = c.Adapter.OutputDim,
            ["rope_theta"] = c.Adapter.RopeTheta, ["layer_norm_eps"] = c.Adapter.LayerNormEps, ["max_frames"] = c.Adapter.MaxFrames,
        },
        ["speech_start_token"] = c.SpeechStartToken,
        ["speech_end_token"] = c.SpeechEndToken,
    };

    /// <summary>Reads and validates a speech model <c>config.json</c>.</summary>
    public static SpeechModelConfig Read(string path) => FromJson(LlamaConfigJson.ReadObject(path), path);

    /// <summary>Parses a config object; <paramref name="source"/> names it in errors.</summary>
    public static SpeechModelConfig FromJson(JsonObject o, string source)
    {
        Unknown(o, TopKnown, source, "");
        if (LlamaConfigJson.Str(o, "model_type", source) != ModelType)
            throw new ConfigException($"{source}: model_type must be '{ModelType}'.");
        var text = o["text_config"] as JsonObject ?? throw new ConfigException($"{source}: 'text_config' object is missing.");
        var enc = o["speech_encoder"] as JsonObject ?? throw new ConfigException($"{source}: 'speech_encoder' object is missing.");
        var ad = o["speech_adapter"] as JsonObject ?? throw new ConfigException($"{source}: 'speech_adapter' object is missing.");
        Unknown(enc, EncKnown, source, "speech_encoder.");
        Unknown(ad, AdKnown, source, "speech_adapter.");
        var e = new ConformerConfig();
        e = e with
        {
            MelBins = LlamaConfigJson.Int(enc, "mel_bins", source) ?? e.MelBins,
            StackFrames = LlamaConfigJson.Int(enc, "stack_frames", source) ?? e.StackFrames,
            Dim = LlamaConfigJson.ReqInt(enc, "dim", source),
            NumLayers = LlamaConfigJson.ReqInt(enc, "num_layers", source),
            NumHeads = LlamaConfigJson.ReqInt(enc, "num_heads", source),
            FfnDim = LlamaConfigJson.ReqInt(enc, "ffn_dim", source),
            ConvKernel = LlamaConfigJson.Int(enc, "conv_kernel", source) ?? e.ConvKernel,
            RopeTheta = LlamaConfigJson.Num(enc, "rope_theta", source) ?? e.RopeTheta,
            LayerNormEps = LlamaConfigJson.Num(enc, "layer_norm_eps", source) ?? e.LayerNormEps,
            MaxFrames = LlamaConfigJson.Int(enc, "max_frames", source) ?? e.MaxFrames,
        };
        var a = new SpeechAdapterConfig();
        a = a with
        {
            InputDim = LlamaConfigJson.ReqInt(ad, "input_dim", source),
            Dim = LlamaConfigJson.ReqInt(ad, "dim", source),
            NumHeads = LlamaConfigJson.ReqInt(ad, "num_heads", source),
            FfnDim = LlamaConfigJson.ReqInt(ad, "ffn_dim", source),
            ConvKernel = LlamaConfigJson.Int(ad, "conv_kernel", source) ?? a.ConvKernel,
            ConvStride = LlamaConfigJson.Int(ad, "conv_stride", source) ?? a.ConvStride,
            OutputDim = LlamaConfigJson.ReqInt(ad, "output_dim", source),
            RopeTheta = LlamaConfigJson.Num(ad, "rope_theta", source) ?? a.RopeTheta,
            LayerNormEps = LlamaConfigJson.Num(ad, "layer_norm_eps", source) ?? a.LayerNormEps,
            MaxFrames = LlamaConfigJson.Int(ad, "max_frames", source) ?? a.MaxFrames,
        };
        var c = new SpeechModelConfig
        {
            Text = LlamaConfigJson.FromHuggingFace(text, source + " text_config"),
            Encoder = e,
            Adapter = a,
        };
        c = c with
        {
            SpeechStartToken = LlamaConfigJson.Str(o, "speech_start_token", source) ?? c.SpeechStartToken,
            SpeechEndToken = LlamaConfigJson.Str(o, "speech_end_token", source) ?? c.SpeechEndToken,
        };
        return c.Validate(source);
    }

    static void Unknown(JsonObject o, HashSet<string> known, string source, string prefix)
    {
        foreach (var kv in o)
            if (!known.Contains(kv.Key)) throw new ConfigException($"{source}: unknown field '{prefix}{kv.Key}'.");
    }
}

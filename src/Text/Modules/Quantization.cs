using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>How the decoder's linear weights are stored in memory.</summary>
public enum WeightQuantization
{
    /// <summary>In the model dtype (f32, bf16 or f16).</summary>
    None,
    /// <summary>Blockwise int8 with one f16 scale per 32 weights (<see cref="Q8"/>, GGUF Q8_0).</summary>
    Q8,
}

/// <summary>Which weights of a decoder are quantized, and how.</summary>
/// <param name="Method">The quantization.</param>
/// <param name="Embeddings">Also quantize the token embedding and the output head (default true, as GGUF Q8_0 files do).</param>
public sealed record QuantizationSettings(WeightQuantization Method, bool Embeddings = true)
{
    /// <summary>The <c>quantization_config</c> object written to config.json.</summary>
    public JsonObject ToJson() => new()
    {
        ["quant_method"] = Method switch { WeightQuantization.Q8 => "q8_0", _ => "none" },
        ["bits"] = 8,
        ["group_size"] = Q8.BlockSize,
        ["symmetric"] = true,
        ["scale_dtype"] = "float16",
        ["scale_suffix"] = "_scale",
        ["quantize_embeddings"] = Embeddings,
    };

    /// <summary>Reads the <c>quantization_config</c> of a config.json, or null when it has none.</summary>
    public static QuantizationSettings? FromConfig(string configPath)
    {
        if (!File.Exists(configPath)) return null;
        var root = LlamaConfigJson.ReadObject(configPath);
        if (root["quantization_config"] is not JsonNode qc) return null;
        if (qc is not JsonObject o || o["quant_method"] is not JsonValue m || !m.TryGetValue(out string? method))
            throw new ConfigException($"{configPath}: quantization_config must be an object with a string 'quant_method'.");
        if (method != "q8_0")
            throw new ConfigException($"{configPath}: quantization_config.quant_method '{method}' is not supported (this library reads q8_0).");
        if (o["group_size"] is JsonValue g && g.TryGetValue(out int gs) && gs != Q8.BlockSize)
            throw new ConfigException($"{configPath}: quantization_config.group_size {gs} is not supported (q8_0 uses {Q8.BlockSize}).");
        bool emb = o["quantize_embeddings"] is not JsonValue e || !e.TryGetValue(out bool b) || b;
        return new QuantizationSettings(WeightQuantization.Q8, emb);
    }

    /// <summary>
    /// The quantization decoder modules created on this thread use (null: none). Loaders set it around model creation
    /// with <see cref="Use"/>; the decoder's attention, cross-attention and MLP projections, and (when
    /// <see cref="Embeddings"/>) the token embedding and output head read it. Encoders never do.
    /// </summary>
    public static QuantizationSettings? Current => _current;

    [ThreadStatic] static QuantizationSettings? _current;

    /// <summary>Makes <paramref name="settings"/> current on this thread until the result is disposed.</summary>
    public static IDisposable Use(QuantizationSettings? settings)
    {
        var previous = _current;
        _current = settings is { Method: WeightQuantization.None } ? null : settings;
        return new Restore(previous);
    }

    sealed class Restore(QuantizationSettings? previous) : IDisposable
    {
        bool _done;
        public void Dispose()
        {
            if (_done) return;
            _done = true;
            _current = previous;
        }
    }
}

/// <summary>Options for loading a model folder (the <c>FromPretrained</c> overloads of every model type take it).</summary>
public sealed record LoadOptions
{
    /// <summary>Device (default CPU).</summary>
    public Device? Device { get; init; }
    /// <summary>Dtype of the weights that are not quantized, and of the activations (default f32).</summary>
    public ScalarType DType { get; init; } = ScalarType.Float32;
    /// <summary>
    /// Quantize the decoder's linear weights while loading (default: none, or what the folder's
    /// <c>quantization_config</c> says). A folder written by <c>mm quantize</c> always loads quantized.
    /// </summary>
    public WeightQuantization Quantize { get; init; } = WeightQuantization.None;
    /// <summary>With <see cref="Quantize"/>: also quantize the token embedding and the output head (default true).</summary>
    public bool QuantizeEmbeddings { get; init; } = true;
    /// <summary>Split the decoder over several devices (text models).</summary>
    public IReadOnlyList<Device>? Devices { get; init; }
    /// <summary>Called after each tensor with (done, total).</summary>
    public Action<int, int>? Progress { get; init; }

    /// <summary>The quantization to use for <paramref name="directory"/>: the folder's own, else the requested one.</summary>
    public QuantizationSettings? QuantizationFor(string directory)
    {
        var stored = QuantizationSettings.FromConfig(Path.Combine(directory, "config.json"));
        if (stored is not null) return stored;
        return Quantize == WeightQuantization.None ? null : new QuantizationSettings(Quantize, QuantizeEmbeddings);
    }
}

/// <summary>Factories for q8 weight storage inside modules.</summary>
public static class QuantizedLayers
{
    /// <summary>Suffix of the scale tensor stored beside a q8 weight (<c>x.weight</c> → <c>x.weight_scale</c>).</summary>
    public const string ScaleSuffix = "_scale";

    /// <summary>An int8 [rows, k] weight and its f16 [rows, ceil(k/32)] scales, uninitialised.</summary>
    public static (Tensor Q, Tensor Scales) Empty(long rows, long k, Device? device) =>
        (torch.empty(new[] { rows, k }, dtype: ScalarType.Int8, device: device).DetachFromDisposeScope(),
         torch.empty(new[] { rows, Q8.Blocks(k) }, dtype: ScalarType.Float16, device: device).DetachFromDisposeScope());

    /// <summary>
    /// A linear layer (no bias) over an int8 weight <paramref name="q"/> (a frozen parameter, key <c>weight</c>) with its
    /// scales registered as the buffer <c>weight_scale</c>.
    /// </summary>
    public static Linear Linear(Tensor q, Tensor scales)
    {
        var l = nn.Linear(new Parameter(q, requires_grad: false));
        l.register_buffer("weight" + ScaleSuffix, scales);
        return l;
    }

    /// <summary>A new uninitialised q8 linear layer [out, in] and its scales.</summary>
    public static (Linear Layer, Tensor Scales) Linear(long inFeatures, long outFeatures, Device? device)
    {
        var (q, s) = Empty(outFeatures, inFeatures, device);
        return (Linear(q, s), s);
    }

    /// <summary>The q8 scale buffer of every int8 weight parameter of <paramref name="module"/>, by the parameter's name.</summary>
    public static Dictionary<string, Tensor> Scales(nn.Module module)
    {
        var buffers = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, b) in module.named_buffers())
            if (name.EndsWith(ScaleSuffix, StringComparison.Ordinal)) buffers[name] = b;
        var scales = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, p) in module.named_parameters())
            if (p.dtype == ScalarType.Int8 && buffers.TryGetValue(name + ScaleSuffix, out var s)) scales[name] = s;
        return scales;
    }

    /// <summary>
    /// The tensors to save for <paramref name="module"/>'s parameters: q8 weights as int8 under their key plus
    /// <c>key_scale</c> (f16); every other parameter under its key in <paramref name="dtypeOf"/>'s dtype.
    /// </summary>
    public static List<TensorToWrite> TensorsToWrite(nn.Module module, Func<string, string> keyFor, Func<string, Tensor, ScalarType> dtypeOf)
    {
        var scales = Scales(module);
        var list = new List<TensorToWrite>();
        // Scales follow all the weights, in the same order: fused weights and their scales then lie back to back in the
        // file, and both load by mapping its pages.
        var scaleList = new List<TensorToWrite>();
        foreach (var (name, p) in module.named_parameters())
        {
            string key = keyFor(name);
            if (scales.TryGetValue(name, out var scale))
            {
                list.Add(new TensorToWrite(key, p.shape, ScalarType.Int8, () => p.detach(), true));
                scaleList.Add(new TensorToWrite(key + ScaleSuffix, scale.shape, ScalarType.Float16, () => scale.detach(), true));
            }
            else list.Add(new TensorToWrite(key, p.shape, dtypeOf(name, p), () => p.detach(), true));
        }
        list.AddRange(scaleList);
        return list;
    }

    /// <summary><c>x Wᵀ</c> through <paramref name="layer"/>: the q8 or low-precision kernels when they apply, else the layer itself.</summary>
    public static Tensor Forward(Linear layer, Tensor x, Tensor? scales)
    {
        if (scales is not null) return WeightKernels.Linear(x, layer.weight!, scales);
        if (layer.bias is not null || torch.is_grad_enabled()) return layer.forward(x);
        return WeightKernels.Linear(x, layer.weight!);
    }
}

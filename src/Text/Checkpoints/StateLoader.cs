using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>
/// Fills a module's parameters from a checkpoint, tensor by tensor. Strict by default: every parameter must be found
/// with the right shape and every checkpoint key must be used; all problems are reported together, each key named.
/// </summary>
public static class StateLoader
{
    /// <summary>Loads <paramref name="module"/> from <paramref name="reader"/>.</summary>
    /// <param name="module">Target module; parameter names are the model's (HF) names.</param>
    /// <param name="reader">Checkpoint.</param>
    /// <param name="keyFor">Checkpoint key for a parameter name (identity for HF layout).</param>
    /// <param name="transform">Optional transform of a read tensor before copying (e.g. rotary permutation), given the parameter name.</param>
    /// <param name="strict">Fail on missing, unexpected or mis-shaped keys.</param>
    /// <param name="ignoreUnexpected">Checkpoint keys that may be present without a parameter (e.g. a tied <c>output.weight</c>).</param>
    /// <param name="progress">Called after each tensor with (done, total).</param>
    public static void Load(nn.Module module, CheckpointReader reader, Func<string, string>? keyFor = null,
        Func<string, Tensor, Tensor>? transform = null, bool strict = true, Func<string, bool>? ignoreUnexpected = null,
        Action<int, int>? progress = null)
    {
        keyFor ??= s => s;
        var parameters = module.named_parameters().ToList();
        // q8 weights (int8 parameters with a weight_scale buffer) read int8 + scale keys, or quantize a float tensor.
        var scales = QuantizedLayers.Scales(module);
        var missing = new List<string>();
        var misShaped = new List<string>();
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, p) in parameters)
        {
            string key = keyFor(name);
            if (!reader.Contains(key)) { missing.Add(key); continue; }
            var info = reader.Info(key);
            if (!info.Shape.SequenceEqual(p.shape)) misShaped.Add($"{key}: checkpoint {info.ShapeText}, model [{string.Join(", ", p.shape)}]");
            used.Add(key);
            if (scales.TryGetValue(name, out var scale) && info.DType == ScalarType.Int8)
            {
                string sk = key + QuantizedLayers.ScaleSuffix;
                if (!reader.Contains(sk)) missing.Add(sk);
                else
                {
                    used.Add(sk);
                    var si = reader.Info(sk);
                    if (!si.Shape.SequenceEqual(scale.shape) || si.DType != ScalarType.Float16)
                        misShaped.Add($"{sk}: checkpoint {SafeTensorDType.Name(si.DType)} {si.ShapeText}, model F16 [{string.Join(", ", scale.shape)}]");
                }
            }
            else if (info.DType == ScalarType.Int8 && p.dtype != ScalarType.Int8)
                misShaped.Add($"{key}: the checkpoint is q8-quantized but the model was not created for q8 weights");
        }
        var unexpected = reader.Keys.Where(k => !used.Contains(k) && (ignoreUnexpected == null || !ignoreUnexpected(k))).OrderBy(k => k, StringComparer.Ordinal).ToList();
        if (misShaped.Count > 0 || strict && (missing.Count > 0 || unexpected.Count > 0))
        {
            var msg = new System.Text.StringBuilder($"{reader.Directory}: checkpoint does not match the model.");
            if (missing.Count > 0) msg.Append($" Missing ({missing.Count}): ").AppendJoin(", ", missing.Take(20)).Append(missing.Count > 20 ? ", …" : "").Append('.');
            if (unexpected.Count > 0) msg.Append($" Unexpected ({unexpected.Count}): ").AppendJoin(", ", unexpected.Take(20)).Append(unexpected.Count > 20 ? ", …" : "").Append('.');
            if (misShaped.Count > 0) msg.Append($" Wrong shape ({misShaped.Count}): ").AppendJoin("; ", misShaped.Take(20)).Append('.');
            throw new CheckpointFormatException(msg.ToString());
        }
        using var noGrad = torch.no_grad();
        int done = 0;
        foreach (var (name, p) in parameters)
        {
            string key = keyFor(name);
            if (!reader.Contains(key)) continue;
            if (scales.TryGetValue(name, out var scale))
            {
                if (reader.Info(key).DType == ScalarType.Int8)
                {
                    reader.ReadInto(key, p);
                    reader.ReadInto(key + QuantizedLayers.ScaleSuffix, scale);
                }
                else
                {
                    // One tensor at a time in its stored dtype (a bf16 checkpoint is never widened whole).
                    using var scope = NewDisposeScope();
                    var t = reader.Read(key);
                    if (transform != null) t = transform(name, t);
                    Q8.QuantizeInto(t, p, scale);
                }
            }
            else if (transform == null) reader.ReadInto(key, p);
            else
            {
                using var scope = NewDisposeScope();
                var t = transform(name, reader.Read(key));
                p.copy_(t);
            }
            progress?.Invoke(++done, parameters.Count);
        }
    }
}

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
            if (transform == null) reader.ReadInto(key, p);
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

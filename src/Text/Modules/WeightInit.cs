using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>Deterministic initialisation of fresh (random-weight) models.</summary>
public static class WeightInit
{
    /// <summary>
    /// Initialises every parameter of <paramref name="module"/> by name: norm and layer-norm scales to 1, biases and
    /// tanh gates to 0, everything else N(0, std²) (HF <c>initializer_range</c>, 0.02 by default). Seeded, so the same
    /// seed gives bit-identical weights.
    /// </summary>
    public static void Apply(nn.Module module, long seed, double std = 0.02, Func<string, Tensor, bool>? custom = null)
    {
        var gen = new Generator((ulong)seed, torch.CPU);
        using var noGrad = torch.no_grad();
        var scales = QuantizedLayers.Scales(module);
        foreach (var (name, p) in module.named_parameters())
        {
            if (p.device_type == DeviceType.META) continue;
            if (custom != null && custom(name, p)) continue;
            string leaf = name[(name.LastIndexOf('.') + 1)..];
            if (IsNormScale(name)) p.fill_(Scalars.One);
            else if (leaf == "bias" || name.Contains("gate") && p.dim() <= 1) p.zero_();
            else
            {
                using var cpu = torch.empty(p.shape, ScalarType.Float32).normal_(0, std, gen);
                if (scales.TryGetValue(name, out var scale)) Q8.QuantizeInto(cpu, p, scale);   // a q8 weight: the same draw, quantized
                else p.copy_(cpu);
            }
        }
    }

    /// <summary>True for parameter names that are norm scales (initialised to one).</summary>
    public static bool IsNormScale(string name)
    {
        if (!name.EndsWith(".weight", StringComparison.Ordinal) && name != "weight") return false;
        string owner = name.Length > 7 ? name[..^7] : "";
        string last = owner[(owner.LastIndexOf('.') + 1)..];
        return last.Contains("norm", StringComparison.Ordinal) || last.StartsWith("ln", StringComparison.Ordinal);
    }
}

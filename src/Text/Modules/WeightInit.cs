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
            if (IsConstant(name, p.dim(), out double value)) p.fill_(value == 1 ? Scalars.One : Scalars.Zero);
            else
            {
                using var cpu = torch.empty(p.shape, ScalarType.Float32).normal_(0, std, gen);
                if (scales.TryGetValue(name, out var scale)) Q8.QuantizeInto(cpu, p, scale);   // a q8 weight: the same draw, quantized
                else p.copy_(cpu);
            }
        }
    }

    /// <summary>True for parameters <see cref="Apply"/> sets to a constant (norm scales 1; biases and tanh gates 0).</summary>
    static bool IsConstant(string name, long dims, out double value)
    {
        string leaf = name[(name.LastIndexOf('.') + 1)..];
        value = IsNormScale(name) ? 1 : 0;
        return IsNormScale(name) || leaf == "bias" || name.Contains("gate") && dims <= 1;
    }

    /// <summary>
    /// The values <see cref="Apply"/> gives, one parameter at a time, for a module that was never allocated (built on the
    /// meta device): each call returns a new f32 CPU tensor for the next parameter in <c>named_parameters()</c> order, so
    /// a checkpoint of any size can be written while only one weight exists at a time. Bit-identical to
    /// <see cref="Apply"/> with the same seed and std (and no custom rule).
    /// </summary>
    public sealed class Stream
    {
        readonly List<(string Name, long[] Shape)> _order;
        readonly Generator _gen;
        readonly double _std;
        int _next;

        /// <summary>Prepares the values of <paramref name="module"/>'s parameters (shapes only are read).</summary>
        public Stream(nn.Module module, long seed, double std = 0.02)
        {
            _order = module.named_parameters().Select(p => (p.name, p.parameter.shape)).ToList();
            _gen = new Generator((ulong)seed, torch.CPU);
            _std = std;
        }

        /// <summary>The values of parameter <paramref name="name"/>, which must be the next one in order.</summary>
        public Tensor Next(string name)
        {
            if (_next >= _order.Count || _order[_next].Name != name)
                throw new InvalidOperationException($"random weights are produced in parameter order; asked for '{name}' but the next is '{(_next < _order.Count ? _order[_next].Name : "none")}'.");
            var (_, shape) = _order[_next++];
            var t = torch.empty(shape, ScalarType.Float32);
            if (IsConstant(name, shape.Length, out double value)) t.fill_(value == 1 ? Scalars.One : Scalars.Zero);
            else t.normal_(0, _std, _gen);
            return t;
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

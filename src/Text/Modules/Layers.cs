using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>
/// Factories for parameterised layers whose storage is allocated but not initialised: checkpoint loading fills them
/// directly (no wasted random init, no second copy), and <see cref="WeightInit"/> initialises fresh models explicitly.
/// </summary>
public static class Layers
{
    /// <summary>A linear layer <c>y = x Wᵀ (+ b)</c> with W of shape [outFeatures, inFeatures], left uninitialised.</summary>
    public static Linear Linear(long inFeatures, long outFeatures, bool bias, Device? device, ScalarType dtype)
    {
        var w = new Parameter(torch.empty(new[] { outFeatures, inFeatures }, dtype: dtype, device: device));
        Parameter? b = bias ? new Parameter(torch.empty(new[] { outFeatures }, dtype: dtype, device: device)) : null;
        return nn.Linear(w, b);
    }

    /// <summary>An uninitialised parameter of the given shape.</summary>
    public static Parameter Param(long[] shape, Device? device, ScalarType dtype) =>
        new(torch.empty(shape, dtype: dtype, device: device));
}

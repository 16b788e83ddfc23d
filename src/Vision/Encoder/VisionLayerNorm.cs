using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision;

/// <summary>LayerNorm with weight and bias (keys <c>weight</c>, <c>bias</c>), storage left uninitialised for loading.</summary>
public sealed class VisionLayerNorm : nn.Module<Tensor, Tensor>
{
    readonly double _eps;
    /// <summary>Scale [dim].</summary>
    public readonly Parameter weight;
    /// <summary>Shift [dim].</summary>
    public readonly Parameter bias;

    /// <summary>Creates the norm.</summary>
    public VisionLayerNorm(long dim, double eps, Device? device, ScalarType dtype) : base("VisionLayerNorm")
    {
        _eps = eps;
        weight = Layers.Param(new[] { dim }, device, dtype);
        bias = Layers.Param(new[] { dim }, device, dtype);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x) => nn.functional.layer_norm(x, new[] { weight.shape[0] }, weight, bias, _eps);
}

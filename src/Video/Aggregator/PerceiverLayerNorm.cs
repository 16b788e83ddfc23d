using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Video;

/// <summary>LayerNorm with scale and bias (keys <c>weight</c>, <c>bias</c>), normalised in f32 and cast back.</summary>
public sealed class PerceiverLayerNorm : nn.Module<Tensor, Tensor>
{
    readonly long _dim;
    readonly double _eps;
#pragma warning disable IDE1006
    /// <summary>Scale [dim].</summary>
    public readonly Parameter weight;
    /// <summary>Bias [dim].</summary>
    public readonly Parameter bias;
#pragma warning restore IDE1006

    /// <summary>Creates the norm (storage uninitialised; <see cref="WeightInit"/> sets 1 and 0).</summary>
    public PerceiverLayerNorm(long dim, double eps, Device? device, ScalarType dtype) : base("PerceiverLayerNorm")
    {
        _dim = dim; _eps = eps;
        weight = Layers.Param(new[] { dim }, device, dtype);
        bias = Layers.Param(new[] { dim }, device, dtype);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = nn.functional.layer_norm(x.to_type(ScalarType.Float32), new[] { _dim },
            weight.to_type(ScalarType.Float32), bias.to_type(ScalarType.Float32), _eps);
        return y.to_type(x.dtype).MoveToOuterDisposeScope();
    }
}

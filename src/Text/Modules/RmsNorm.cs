using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>RMSNorm: <c>x · rsqrt(mean(x²) + eps) · w</c>, normalised in f32 and cast back before the weight (as Meta and HF do).</summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    readonly Scalar _epsScalar;   // kept alive with the module (see Scalars)
    /// <summary>Scale, shape [dim], checkpoint key <c>weight</c>.</summary>
    public readonly TorchSharp.Modules.Parameter weight;

    /// <summary>The epsilon added to the mean square.</summary>
    internal double Eps { get; }

    /// <summary>Creates the norm with unit weight.</summary>
    public RmsNorm(long dim, double eps, Device? device = null, ScalarType dtype = ScalarType.Float32) : base("RmsNorm")
    {
        _epsScalar = eps.ToScalar();
        Eps = eps;
        weight = new TorchSharp.Modules.Parameter(torch.ones(new[] { dim }, dtype: dtype, device: device));
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var xf = x.to_type(ScalarType.Float32);
        var norm = xf * rsqrt(xf.pow(Scalars.Two).mean(new long[] { -1 }, keepdim: true).add(_epsScalar, Scalars.One));
        return (weight * norm.to_type(x.dtype)).MoveToOuterDisposeScope();
    }
}

using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>Global-norm gradient clipping (as <c>torch.nn.utils.clip_grad_norm_</c>).</summary>
public static class GradientClipping
{
    /// <summary>
    /// Computes the global L2 norm of all gradients (in f32) and, when it exceeds <paramref name="maxNorm"/>, scales every
    /// gradient by <c>maxNorm / (norm + 1e-6)</c>. Returns the norm before clipping. <paramref name="maxNorm"/> ≤ 0 only measures.
    /// </summary>
    public static double ClipGlobalNorm(IEnumerable<Tensor> parameters, double maxNorm)
    {
        using var scope = NewDisposeScope();
        using var noGrad = torch.no_grad();
        var grads = parameters.Select(p => p.grad).Where(g => g is not null).Select(g => g!).ToList();
        if (grads.Count == 0) return 0;
        Tensor total = torch.zeros(1, ScalarType.Float64);
        foreach (var g in grads) total.add_(g.to_type(ScalarType.Float32).pow(Scalars.Two).sum().to_type(ScalarType.Float64).cpu(), Scalars.One);
        double norm = Math.Sqrt(total.item<double>());
        if (maxNorm > 0 && norm > maxNorm)
        {
            double coef = maxNorm / (norm + 1e-6);
            using var c = coef.ToScalar();
            foreach (var g in grads) g.mul_(c);
        }
        return norm;
    }
}

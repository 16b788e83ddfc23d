using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech;

/// <summary>
/// BEST-RQ's frozen random-projection quantizer with several codebooks: stacked frames x (320-d) are projected by each
/// codebook's own Xavier-uniform matrix (320 → 16), l2-normalised, and assigned the codebook vector (standard normal,
/// l2-normalised) of highest cosine similarity. Nothing here is trained; the tensors are stored in checkpoints so
/// targets stay the same across runs.
/// </summary>
public sealed class RandomProjectionQuantizer : nn.Module
{
#pragma warning disable IDE1006 // checkpoint key names
    /// <summary>Projections [books, input_dim, code_dim] (f32, frozen).</summary>
    public readonly Parameter projections;
    /// <summary>Codebooks [books, size, code_dim], rows of unit length (f32, frozen).</summary>
    public readonly Parameter codebooks;
#pragma warning restore IDE1006

    /// <summary>Creates the quantizer with frozen random tensors drawn from <paramref name="seed"/> (CPU generator).</summary>
    public RandomProjectionQuantizer(int inputDim, int books, int size, int codeDim, long seed, Device? device = null) : base("RandomProjectionQuantizer")
    {
        var gen = new Generator((ulong)seed, CPU);
        using (var scope = NewDisposeScope())
        {
            double bound = Math.Sqrt(6.0 / (inputDim + codeDim)); // Xavier/Glorot uniform for a inputDim → codeDim map
            using Scalar width = (2 * bound).ToScalar(), low = (-bound).ToScalar();
            var a = torch.rand(new long[] { books, inputDim, codeDim }, generator: gen).mul_(width).add_(low, Scalars.One);
            var c = nn.functional.normalize(torch.randn(new long[] { books, size, codeDim }, generator: gen), p: 2, dim: -1);
            projections = new Parameter(a.to(device ?? CPU), requires_grad: false);
            codebooks = new Parameter(c.to(device ?? CPU), requires_grad: false);
            projections.DetachFromDisposeScope(); codebooks.DetachFromDisposeScope();
        }
        RegisterComponents();
    }

    /// <summary>Number of codebooks.</summary>
    public long Books => codebooks.shape[0];

    /// <summary>Target ids [B, books, T] (int64) for stacked frames x [B, T, input_dim].</summary>
    public Tensor Quantize(Tensor x)
    {
        using var scope = NewDisposeScope();
        using var noGrad = torch.no_grad();
        var xf = x.to(ScalarType.Float32, projections.device);
        var ids = new Tensor[Books];
        for (long c = 0; c < Books; c++) // one book at a time keeps the [B, T, size] similarity small
        {
            var z = nn.functional.normalize(xf.matmul(projections[c]), p: 2, dim: -1); // [B, T, code_dim]
            ids[c] = z.matmul(codebooks[c].t()).argmax(-1);                           // cosine = dot of unit vectors
        }
        return torch.stack(ids, 1).MoveToOuterDisposeScope();
    }
}

using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech;

/// <summary>Masks for zero-padded batches of variable-length sequences.</summary>
internal static class SequenceMask
{
    /// <summary>[B, T] bool, true where t &lt; lengths[b].</summary>
    public static Tensor Valid(Tensor lengths, long t, Device device) =>
        Scalars.Arange(0, t, device).unsqueeze(0) < lengths.to(ScalarType.Int64, device).unsqueeze(1);

    /// <summary>⌈lengths / factor⌉ (int64).</summary>
    public static Tensor CeilDiv(Tensor lengths, long factor)
    {
        using Scalar up = (factor - 1).ToScalar(), f = factor.ToScalar();
        return torch.div(lengths.to(ScalarType.Int64).add(up, Scalars.One), f, RoundingMode.floor).to(ScalarType.Int64);
    }
}

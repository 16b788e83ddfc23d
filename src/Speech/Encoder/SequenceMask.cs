using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech;

/// <summary>Masks for zero-padded batches of variable-length sequences.</summary>
internal static class SequenceMask
{
    /// <summary>[B, T] bool, true where t &lt; lengths[b].</summary>
    public static Tensor Valid(Tensor lengths, long t, Device device) =>
        torch.arange(t, dtype: ScalarType.Int64, device: device).unsqueeze(0) < lengths.to(ScalarType.Int64, device).unsqueeze(1);

    /// <summary>⌈lengths / factor⌉ (int64).</summary>
    public static Tensor CeilDiv(Tensor lengths, long factor) =>
        torch.div(lengths.to(ScalarType.Int64) + (factor - 1), factor, RoundingMode.floor).to(ScalarType.Int64);
}

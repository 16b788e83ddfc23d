using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech.Tests;

internal static class TensorAssert
{
    /// <summary>Exact equality of shape and values.</summary>
    public static bool Same(this Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();
}

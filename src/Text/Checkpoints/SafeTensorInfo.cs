using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>One tensor's entry in a safetensors header.</summary>
/// <param name="Name">Key.</param>
/// <param name="DType">Element type.</param>
/// <param name="Shape">Shape.</param>
/// <param name="Begin">Start offset, relative to the data buffer.</param>
/// <param name="End">End offset (exclusive), relative to the data buffer.</param>
public sealed record SafeTensorInfo(string Name, ScalarType DType, long[] Shape, long Begin, long End)
{
    /// <summary>Number of elements.</summary>
    public long Count => Shape.Aggregate(1L, (a, b) => a * b);
    /// <summary>Shape as text, e.g. [2048, 8192].</summary>
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

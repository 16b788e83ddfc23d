using TorchSharp;

namespace Llama3.Multimodal.Text;

/// <summary>
/// Scalars that live for the whole process. TorchSharp turns a number passed to a tensor op (<c>x * 0.5</c>,
/// <c>x.pow(2)</c>, <c>masked_fill(m, -inf)</c>) into a temporary native <see cref="Scalar"/> that nothing keeps alive
/// during the native call, so a garbage collection started by another thread (a data-prefetch thread, a server's other
/// requests) can finalize and free it while libtorch still reads it. The library therefore passes either one of these
/// rooted constants or a scalar held by <c>using var s = v.ToScalar()</c> for the duration of the call.
/// </summary>
public static class Scalars
{
    /// <summary>0.</summary>
    public static readonly Scalar Zero = 0.ToScalar();
    /// <summary>1.</summary>
    public static readonly Scalar One = 1.ToScalar();
    /// <summary>2.</summary>
    public static readonly Scalar Two = 2.ToScalar();
    /// <summary>0.5.</summary>
    public static readonly Scalar Half = 0.5.ToScalar();
    /// <summary>−1.</summary>
    public static readonly Scalar MinusOne = (-1).ToScalar();
    /// <summary>Negative infinity (f32).</summary>
    public static readonly Scalar NegativeInfinity = float.NegativeInfinity.ToScalar();
    /// <summary>True.</summary>
    public static readonly Scalar True = true.ToScalar();
    /// <summary>False.</summary>
    public static readonly Scalar False = false.ToScalar();

    /// <summary><c>a + b</c> without TorchSharp's temporary <c>alpha = 1</c> scalar.</summary>
    public static torch.Tensor Add(torch.Tensor a, torch.Tensor b) => a.add(b, One);

    /// <summary><c>torch.arange(start, stop)</c> (Int64) with its scalars held for the call.</summary>
    public static torch.Tensor Arange(long start, long stop, torch.Device? device = null)
    {
        using Scalar a = start.ToScalar(), b = stop.ToScalar();
        return torch.arange(a, b, One, dtype: torch.ScalarType.Int64, device: device);
    }
}

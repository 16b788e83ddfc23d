using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>
/// Rotary position embedding tables (cos/sin, f32) in the Hugging Face "rotate_half" convention, with optional
/// Llama 3.1 frequency scaling. Tables are cached per device and grown on demand; they are not module state.
/// </summary>
public sealed class RotaryEmbedding : IDisposable
{
    readonly double[] _invFreq;
    readonly int _headDim;
    readonly int _maxPositions;
    Tensor? _cos, _sin; // [P, headDim/2] f32
    Device? _device;

    /// <summary>Creates the tables' recipe for a head width and rotary settings.</summary>
    public RotaryEmbedding(int headDim, double theta, RopeScaling? scaling, int maxPositions)
    {
        _headDim = headDim;
        _maxPositions = maxPositions;
        _invFreq = InverseFrequencies(headDim, theta, scaling);
    }

    /// <summary>The per-pair frequencies <c>f_i = theta^(-2i/d)</c>, scaled as Llama 3.1 when <paramref name="scaling"/> is given.</summary>
    public static double[] InverseFrequencies(int headDim, double theta, RopeScaling? scaling)
    {
        var f = new double[headDim / 2];
        for (int i = 0; i < f.Length; i++) f[i] = 1.0 / Math.Pow(theta, 2.0 * i / headDim);
        if (scaling is not { } s) return f;
        // Llama 3.1 rope scaling.
        double lowWavelen = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor;
        double highWavelen = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
        for (int i = 0; i < f.Length; i++)
        {
            double wavelen = 2 * Math.PI / f[i];
            if (wavelen < highWavelen) continue;
            if (wavelen > lowWavelen) { f[i] /= s.Factor; continue; }
            double smooth = (s.OriginalMaxPositionEmbeddings / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
            f[i] = (1 - smooth) * f[i] / s.Factor + smooth * f[i];
        }
        return f;
    }

    void Ensure(int positions, Device device)
    {
        if (_cos is not null && _cos.shape[0] >= positions && _device == device) return;
        int n = Math.Max(positions, Math.Min(_maxPositions, Math.Max(256, positions * 2)));
        n = Math.Max(n, positions);
        var cos = new float[(long)n * _invFreq.Length];
        var sin = new float[cos.Length];
        for (int p = 0; p < n; p++)
            for (int i = 0; i < _invFreq.Length; i++)
            {
                double a = p * _invFreq[i];
                cos[(long)p * _invFreq.Length + i] = (float)Math.Cos(a);
                sin[(long)p * _invFreq.Length + i] = (float)Math.Sin(a);
            }
        _cos?.Dispose(); _sin?.Dispose();
        _cos = torch.tensor(cos, new long[] { n, _invFreq.Length }).to(device).DetachFromDisposeScope();
        _sin = torch.tensor(sin, new long[] { n, _invFreq.Length }).to(device).DetachFromDisposeScope();
        _device = device;
    }

    /// <summary>
    /// cos and sin for <paramref name="positions"/> ([B, T] int64), each [B, 1, T, headDim] f32, ready for
    /// <see cref="Apply"/>.
    /// </summary>
    public (Tensor Cos, Tensor Sin) Tables(Tensor positions, int maxPosition)
    {
        if (maxPosition >= _maxPositions)
            throw new ArgumentOutOfRangeException(nameof(positions), $"position {maxPosition} is beyond max_position_embeddings {_maxPositions}.");
        Ensure(maxPosition + 1, positions.device);
        using var scope = NewDisposeScope();
        var flat = positions.reshape(-1);
        long b = positions.shape[0], t = positions.shape[1];
        var c = _cos!.index_select(0, flat).view(b, 1, t, -1);
        var s = _sin!.index_select(0, flat).view(b, 1, t, -1);
        return (torch.cat(new[] { c, c }, -1).MoveToOuterDisposeScope(), torch.cat(new[] { s, s }, -1).MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The cos and sin rows (head_dim / 2 entries each, f32, CPU) of <paramref name="position"/>; valid until the tables
    /// grow or move.
    /// </summary>
    internal unsafe void Row(int position, out float* cos, out float* sin)
    {
        if (position < 0 || position >= _maxPositions)
            throw new ArgumentOutOfRangeException(nameof(position), $"position {position} is beyond max_position_embeddings {_maxPositions}.");
        if (_cos is null || _cos.shape[0] <= position || _device is null || _device.type != DeviceType.CPU) Ensure(position + 1, CPU);
        long off = (long)position * _invFreq.Length;
        cos = (float*)TensorPointers.Data(_cos!) + off;
        sin = (float*)TensorPointers.Data(_sin!) + off;
    }

    /// <summary>Rotates <paramref name="x"/> [B, H, T, D] (HF convention): <c>x·cos + rotate_half(x)·sin</c>, in f32, cast back.</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        var xf = x.to_type(ScalarType.Float32);
        long half = x.shape[^1] / 2;
        var x1 = xf.narrow(-1, 0, half);
        var x2 = xf.narrow(-1, half, half);
        var rotated = torch.cat(new[] { -x2, x1 }, -1);
        return Scalars.Add(xf * cos, rotated * sin).to_type(x.dtype).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _cos?.Dispose(); _sin?.Dispose();
        _cos = _sin = null;
    }
}

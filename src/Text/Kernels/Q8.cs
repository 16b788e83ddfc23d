using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>
/// Blockwise symmetric int8 weight quantization, the scheme of GGUF Q8_0: each row of a weight [rows, k] is cut into
/// blocks of 32 consecutive weights (the last block of a row may be shorter when k is not a multiple of 32), and each
/// block stores one scale <c>d = max|w| / 127</c> and 32 signed bytes <c>q = round(w · (1/d))</c>, so that
/// <c>w ≈ d · q</c> with |q| ≤ 127. The rounding is to the nearest integer with halves away from zero (C <c>roundf</c>);
/// <c>1/d</c> is taken in f32 before <c>d</c> is rounded to f16, and an all-zero block has d = 0 and q = 0, exactly as
/// GGUF's reference quantizer. Scales are kept as IEEE f16 (2 bytes per 32 weights, 8.5 bits per weight in all, as
/// in GGUF), in memory and on disk, and dequantization multiplies by the f16 value widened to f32. Stored as two
/// tensors: <c>q</c> int8 [rows, k] and <c>scales</c> f16 [rows, ceil(k/32)].
/// </summary>
public static class Q8
{
    /// <summary>Weights per block (one scale each).</summary>
    public const int BlockSize = 32;

    /// <summary>Number of blocks (scales) per row of length <paramref name="k"/>.</summary>
    public static long Blocks(long k) => (k + BlockSize - 1) / BlockSize;

    /// <summary>Quantizes a 2-D float weight (f32, bf16 or f16, any device) into new CPU tensors.</summary>
    public static (Tensor Q, Tensor Scales) Quantize(Tensor weight)
    {
        if (weight.dim() != 2) throw new ArgumentException($"Q8 quantizes 2-D weights; got shape [{string.Join(", ", weight.shape)}].");
        var q = torch.empty(weight.shape, dtype: ScalarType.Int8);
        var s = torch.empty(new[] { weight.shape[0], Blocks(weight.shape[1]) }, dtype: ScalarType.Float16);
        QuantizeInto(weight, q, s);
        return (q, s);
    }

    /// <summary>
    /// Quantizes <paramref name="weight"/> [rows, k] into existing CPU tensors <paramref name="q"/> (int8 [rows, k]) and
    /// <paramref name="scales"/> (f16 [rows, ceil(k/32)]), whose rows must be contiguous (row ranges of a larger tensor are
    /// fine). Rows are processed in slices, so a bf16 or f16 source is never widened whole.
    /// </summary>
    public static unsafe void QuantizeInto(Tensor weight, Tensor q, Tensor scales)
    {
        if (weight.dim() != 2) throw new ArgumentException($"Q8 quantizes 2-D weights; got shape [{string.Join(", ", weight.shape)}].");
        long rows = weight.shape[0], k = weight.shape[1];
        CheckStorage(q, scales, rows, k, "Q8.QuantizeInto");
        if (!weight.is_floating_point()) throw new ArgumentException($"Q8 quantizes float weights; got {weight.dtype}.");
        using var noGrad = torch.no_grad();
        const long SliceElems = 1L << 22;
        long slice = Math.Max(1, SliceElems / Math.Max(1, k));
        for (long r0 = 0; r0 < rows; r0 += slice)
        {
            long n = Math.Min(slice, rows - r0);
            // Every temporary of the slice (the f32 copy, and the tensor `to` returns before `contiguous`) is freed here,
            // not when the garbage collector gets to it: otherwise a whole model's worth of f32 copies piles up.
            using var scope = NewDisposeScope();
            using var src = weight.narrow(0, r0, n);
            using var f = src.device_type == DeviceType.CPU && src.dtype == ScalarType.Float32 && src.is_contiguous()
                ? src.alias() : src.to(ScalarType.Float32, CPU).contiguous();
            using var qs = q.narrow(0, r0, n);
            using var ss = scales.narrow(0, r0, n);
            var st = new QuantState
            {
                Src = (float*)TensorPointers.Data(f), K = (int)k,
                Q = (sbyte*)TensorPointers.Data(qs), LdQ = qs.stride(0),
                S = (ushort*)TensorPointers.Data(ss), LdS = ss.stride(0),
            };
            RowPool.Shared.Run(&QuantizeRows, &st, (int)n, Math.Max(1, (int)(65536 / Math.Max(1, k))));
        }
    }

    /// <summary>Dequantizes to a new tensor of <paramref name="dtype"/> on the tensors' device: <c>w = d · q</c>.</summary>
    public static Tensor Dequantize(Tensor q, Tensor scales, ScalarType dtype = ScalarType.Float32)
    {
        long rows = q.shape[0], k = q.shape[1], nb = Blocks(k);
        CheckShapes(q, scales, rows, k, "Q8.Dequantize");
        using var scope = NewDisposeScope();
        var qf = q.to_type(ScalarType.Float32);
        if (nb * BlockSize != k) qf = nn.functional.pad(qf, new[] { 0L, nb * BlockSize - k });
        var w = (qf.view(rows, nb, BlockSize) * scales.to_type(ScalarType.Float32).unsqueeze(-1)).view(rows, nb * BlockSize);
        if (nb * BlockSize != k) w = w.narrow(1, 0, k);
        return w.to_type(dtype).contiguous().MoveToOuterDisposeScope();
    }

    internal static void CheckShapes(Tensor q, Tensor scales, long rows, long k, string what)
    {
        if (q.dim() != 2 || q.dtype != ScalarType.Int8 || q.shape[0] != rows || q.shape[1] != k)
            throw new ArgumentException($"{what}: q must be int8 [{rows}, {k}]; got {q.dtype} [{string.Join(", ", q.shape)}].");
        if (scales.dim() != 2 || scales.dtype != ScalarType.Float16 || scales.shape[0] != rows || scales.shape[1] != Blocks(k))
            throw new ArgumentException($"{what}: scales must be f16 [{rows}, {Blocks(k)}]; got {scales.dtype} [{string.Join(", ", scales.shape)}].");
    }

    static void CheckStorage(Tensor q, Tensor scales, long rows, long k, string what)
    {
        CheckShapes(q, scales, rows, k, what);
        if (q.device_type != DeviceType.CPU || scales.device_type != DeviceType.CPU || q.stride(1) != 1 || scales.stride(1) != 1)
            throw new ArgumentException($"{what}: q and scales must be CPU tensors with contiguous rows.");
    }

    unsafe struct QuantState
    {
        public float* Src;
        public int K;
        public sbyte* Q;
        public long LdQ;
        public ushort* S;
        public long LdS;
    }

    static unsafe void QuantizeRows(void* state, int r0, int r1)
    {
        var st = (QuantState*)state;
        int k = st->K;
        for (int r = r0; r < r1; r++)
        {
            float* w = st->Src + (long)r * k;
            sbyte* q = st->Q + r * st->LdQ;
            ushort* s = st->S + r * st->LdS;
            for (int c0 = 0, b = 0; c0 < k; c0 += BlockSize, b++)
            {
                int c1 = Math.Min(k, c0 + BlockSize);
                s[b] = QuantizeBlock(w + c0, q + c0, c1 - c0);
            }
        }
    }

    /// <summary>Quantizes one block of <paramref name="n"/> ≤ 32 weights; returns the f16 bits of its scale.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe ushort QuantizeBlock(float* w, sbyte* q, int n)
    {
        float amax = 0;
        for (int i = 0; i < n; i++) amax = MathF.Max(amax, MathF.Abs(w[i]));
        float d = amax / 127f;
        float id = d != 0 ? 1f / d : 0f;
        for (int i = 0; i < n; i++)
        {
            float v = MathF.Round(w[i] * id, MidpointRounding.AwayFromZero);
            q[i] = (sbyte)Math.Clamp(v, -127f, 127f);
        }
        return HalfBits.F32ToF16(d);
    }

    /// <summary>Writes rows [r0, r1) of a q8 weight, dequantized, as f32 rows of length k at <paramref name="dst"/>.</summary>
    internal static unsafe void DequantizeRows(sbyte* q, long ldq, ushort* s, long lds, int k, int r0, int r1, float* dst)
    {
        for (int r = r0; r < r1; r++)
        {
            sbyte* qr = q + r * ldq;
            ushort* sr = s + r * lds;
            float* o = dst + (long)(r - r0) * k;
            int c0 = 0, b = 0;
            if (Avx512F.IsSupported)
                for (; c0 + BlockSize <= k; c0 += BlockSize, b++)
                {
                    var d = Vector512.Create(HalfBits.F16ToF32(sr[b]));
                    Avx512F.Store(o + c0, Avx512F.Multiply(Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Sse2.LoadVector128(qr + c0))), d));
                    Avx512F.Store(o + c0 + 16, Avx512F.Multiply(Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Sse2.LoadVector128(qr + c0 + 16))), d));
                }
            else if (Avx2.IsSupported)
                for (; c0 + BlockSize <= k; c0 += BlockSize, b++)
                {
                    var d = Vector256.Create(HalfBits.F16ToF32(sr[b]));
                    for (int i = 0; i < BlockSize; i += 8)
                        Avx.Store(o + c0 + i, Avx.Multiply(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(qr + c0 + i)), d));
                }
            for (; c0 < k; c0 += BlockSize, b++)
            {
                float d = HalfBits.F16ToF32(sr[b]);
                int c1 = Math.Min(k, c0 + BlockSize);
                for (int c = c0; c < c1; c++) o[c] = d * qr[c];
            }
        }
    }
}

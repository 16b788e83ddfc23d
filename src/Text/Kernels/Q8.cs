using System.Numerics;
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
    /// fine). A CPU f32, bf16 or f16 source whose rows are contiguous is read in place (16-bit values are widened a
    /// block at a time, never the whole tensor); any other source is converted to f32 in slices of rows. Rows are
    /// split over the cores and each block of 32 is quantized with the widest vector instructions the CPU has; the
    /// result is bit-identical to the scalar rule in the class summary.
    /// </summary>
    public static void QuantizeInto(Tensor weight, Tensor q, Tensor scales) => QuantizeInto(weight, q, scales, GemvKernels.Best);

    /// <summary>As <see cref="QuantizeInto(Tensor, Tensor, Tensor)"/> with the block kernel of <paramref name="isa"/>, or the plain scalar rule when null.</summary>
    internal static unsafe void QuantizeInto(Tensor weight, Tensor q, Tensor scales, KernelIsa? isa)
    {
        if (weight.dim() != 2) throw new ArgumentException($"Q8 quantizes 2-D weights; got shape [{string.Join(", ", weight.shape)}].");
        long rows = weight.shape[0], k = weight.shape[1];
        CheckStorage(q, scales, rows, k, "Q8.QuantizeInto");
        if (!weight.is_floating_point()) throw new ArgumentException($"Q8 quantizes float weights; got {weight.dtype}.");
        if (rows == 0 || k == 0) return;
        if (k > int.MaxValue || rows > int.MaxValue) throw new ArgumentException($"Q8 quantizes weights of fewer than 2^31 rows and columns; got [{rows}, {k}].");
        int mode = isa is { } i && (i != KernelIsa.Avx512 || Avx512F.IsSupported) && (i != KernelIsa.Avx2 || Avx2.IsSupported) ? (int)i : ScalarMode;
        using var noGrad = torch.no_grad();
        var format = weight.dtype switch
        {
            ScalarType.Float32 => SourceFormat.F32,
            ScalarType.BFloat16 => SourceFormat.BF16,
            ScalarType.Float16 => SourceFormat.F16,
            _ => (SourceFormat)(-1),
        };
        if (weight.device_type == DeviceType.CPU && (int)format >= 0 && weight.stride(1) == 1)
        {
            Run(TensorPointers.Data(weight), format, weight.stride(0), rows, k, q, scales, 0, mode);
            return;
        }
        const long SliceElems = 1L << 22;
        long slice = Math.Max(1, SliceElems / k);
        for (long r0 = 0; r0 < rows; r0 += slice)
        {
            long n = Math.Min(slice, rows - r0);
            // Every temporary of the slice (the f32 copy, and the tensor `to` returns before `contiguous`) is freed here,
            // not when the garbage collector gets to it: otherwise a whole model's worth of f32 copies piles up.
            using var scope = NewDisposeScope();
            using var src = weight.narrow(0, r0, n);
            using var f = src.to(ScalarType.Float32, CPU).contiguous();
            Run(TensorPointers.Data(f), SourceFormat.F32, k, n, k, q, scales, r0, mode);
        }
    }

    static unsafe void Run(void* src, SourceFormat format, long ldSrc, long rows, long k, Tensor q, Tensor scales, long row0, int mode)
    {
        var st = new QuantState
        {
            Src = src, Format = format, LdSrc = ldSrc, K = (int)k, Mode = mode,
            Q = (sbyte*)TensorPointers.Data(q) + row0 * q.stride(0), LdQ = q.stride(0),
            S = (ushort*)TensorPointers.Data(scales) + row0 * scales.stride(0), LdS = scales.stride(0),
        };
        RowPool.Shared.Run(&QuantizeRows, &st, (int)rows, Math.Max(1, (int)(65536 / k)));
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

    enum SourceFormat { F32, BF16, F16 }

    /// <summary>Kernel mode of the plain scalar rule (the other modes are <see cref="KernelIsa"/> values).</summary>
    const int ScalarMode = -1;

    unsafe struct QuantState
    {
        public void* Src;
        public SourceFormat Format;
        public long LdSrc;
        public int K;
        public int Mode;
        public sbyte* Q;
        public long LdQ;
        public ushort* S;
        public long LdS;
    }

    /// <summary>Elements of a 16-bit source row widened to f32 at a time (a multiple of the block).</summary>
    const int WidenChunk = 1024;

    static unsafe void QuantizeRows(void* state, int r0, int r1)
    {
        var st = (QuantState*)state;
        int k = st->K, mode = st->Mode;
        float* buf = stackalloc float[WidenChunk];
        for (int r = r0; r < r1; r++)
        {
            sbyte* q = st->Q + r * st->LdQ;
            ushort* s = st->S + r * st->LdS;
            if (st->Format == SourceFormat.F32)
            {
                QuantizeSpan((float*)st->Src + r * st->LdSrc, k, q, s, mode);
                continue;
            }
            ushort* h = (ushort*)st->Src + r * st->LdSrc;
            for (int c0 = 0; c0 < k; c0 += WidenChunk)
            {
                int n = Math.Min(WidenChunk, k - c0);
                if (st->Format == SourceFormat.BF16) WidenBf16(h + c0, buf, n, mode);
                else WidenF16(h + c0, buf, n, mode);
                QuantizeSpan(buf, n, q + c0, s + c0 / BlockSize, mode);
            }
        }
    }

    /// <summary>Quantizes <paramref name="n"/> consecutive weights (whole blocks, the last one possibly shorter).</summary>
    internal static unsafe void QuantizeSpan(float* w, int n, sbyte* q, ushort* s, int mode)
    {
        int c = 0, b = 0;
        if (mode == (int)KernelIsa.Avx512 && Avx512F.IsSupported && Avx512BW.IsSupported)
            for (; c + BlockSize <= n; c += BlockSize, b++) s[b] = Block512(w + c, q + c);
        else if (mode >= (int)KernelIsa.Avx2 && Avx2.IsSupported)
            for (; c + BlockSize <= n; c += BlockSize, b++) s[b] = Block256(w + c, q + c);
        else if (mode == (int)KernelIsa.Portable && Vector.IsHardwareAccelerated && BlockSize % Vector<float>.Count == 0)
            for (; c + BlockSize <= n; c += BlockSize, b++) s[b] = BlockVector(w + c, q + c);
        for (; c < n; c += BlockSize, b++) s[b] = QuantizeBlock(w + c, q + c, Math.Min(BlockSize, n - c));
    }

    /// <summary>The block's scale and its reciprocal, or false when the vector kernels must leave it to the scalar rule.</summary>
    /// <remarks>
    /// <paramref name="amaxBits"/> is the largest |w| as raw bits: for non-negative floats the integer order is the
    /// numeric order, and a block holding an infinity or NaN has bits ≥ 0x7f800000. The vector kernels take only blocks
    /// whose weights and 1/d are finite, so every product w · (1/d) is finite with |w · (1/d)| ≤ 127 + a few ulps, and
    /// round-half-away-from-zero is exactly <c>t = trunc(x); t + sign(x)</c> when <c>|x − t| ≥ 0.5</c> (x − t is exact).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static bool Scale(int amaxBits, out float d, out float id)
    {
        d = BitConverter.Int32BitsToSingle(amaxBits) / 127f;
        id = d != 0 ? 1f / d : 0f;
        return amaxBits < 0x7f800000 && float.IsFinite(id);
    }

    static unsafe ushort Block512(float* w, sbyte* q)
    {
        var a = Avx512F.LoadVector512(w);
        var b = Avx512F.LoadVector512(w + 16);
        var absMask = Vector512.Create(0x7fffffff);
        var m = Avx512F.Max(Avx512F.And(a.AsInt32(), absMask), Avx512F.And(b.AsInt32(), absMask));
        var m256 = Avx2.Max(m.GetLower(), m.GetUpper());
        var m128 = Sse41.Max(m256.GetLower(), m256.GetUpper());
        m128 = Sse41.Max(m128, Sse2.Shuffle(m128, 0b01_00_11_10));
        m128 = Sse41.Max(m128, Sse2.Shuffle(m128, 0b10_11_00_01));
        if (!Scale(m128.ToScalar(), out float d, out float id)) return QuantizeBlock(w, q, BlockSize);
        var vid = Vector512.Create(id);
        Sse2.Store(q, Avx512BW.ConvertToVector128SByteWithSaturation(Round512(Avx512F.Multiply(a, vid))));
        Sse2.Store(q + 16, Avx512BW.ConvertToVector128SByteWithSaturation(Round512(Avx512F.Multiply(b, vid))));
        return HalfBits.F32ToF16(d);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<int> Round512(Vector512<float> x)
    {
        var t = Avx512F.RoundScale(x, 0x0B);                          // truncate, no precision exception
        var frac = Avx512F.Subtract(x, t);
        var half = Avx512F.And(frac.AsInt32(), Vector512.Create(0x7fffffff)).AsSingle();
        var one = Avx512F.Or(Avx512F.And(x.AsInt32(), Vector512.Create(int.MinValue)), Vector512.Create(1f).AsInt32()).AsSingle();
        var mask = Vector512.GreaterThanOrEqual(half, Vector512.Create(0.5f));
        var r = Avx512F.Add(t, Avx512F.And(mask.AsInt32(), one.AsInt32()).AsSingle());
        r = Avx512F.Max(Avx512F.Min(r, Vector512.Create(127f)), Vector512.Create(-127f));
        return Avx512F.ConvertToVector512Int32WithTruncation(r);
    }

    static unsafe ushort Block256(float* w, sbyte* q)
    {
        var v0 = Avx.LoadVector256(w);
        var v1 = Avx.LoadVector256(w + 8);
        var v2 = Avx.LoadVector256(w + 16);
        var v3 = Avx.LoadVector256(w + 24);
        var absMask = Vector256.Create(0x7fffffff);
        var m = Avx2.Max(Avx2.Max(Avx2.And(v0.AsInt32(), absMask), Avx2.And(v1.AsInt32(), absMask)),
                         Avx2.Max(Avx2.And(v2.AsInt32(), absMask), Avx2.And(v3.AsInt32(), absMask)));
        var m128 = Sse41.Max(m.GetLower(), m.GetUpper());
        m128 = Sse41.Max(m128, Sse2.Shuffle(m128, 0b01_00_11_10));
        m128 = Sse41.Max(m128, Sse2.Shuffle(m128, 0b10_11_00_01));
        if (!Scale(m128.ToScalar(), out float d, out float id)) return QuantizeBlock(w, q, BlockSize);
        var vid = Vector256.Create(id);
        var i0 = Round256(Avx.Multiply(v0, vid));
        var i1 = Round256(Avx.Multiply(v1, vid));
        var i2 = Round256(Avx.Multiply(v2, vid));
        var i3 = Round256(Avx.Multiply(v3, vid));
        // Packing works within 128-bit lanes: the bytes come out as groups of 4 in the order 0 2 4 6 1 3 5 7 of
        // (i0.lo, i0.hi, i1.lo, ...) pairs; one permutation of 32-bit groups restores the order.
        var p = Avx2.PackSignedSaturate(Avx2.PackSignedSaturate(i0, i1), Avx2.PackSignedSaturate(i2, i3));
        Avx.Store(q, Avx2.PermuteVar8x32(p.AsInt32(), Vector256.Create(0, 4, 1, 5, 2, 6, 3, 7)).AsSByte());
        return HalfBits.F32ToF16(d);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> Round256(Vector256<float> x)
    {
        var t = Avx.RoundToZero(x);
        var half = Avx.And(Avx.Subtract(x, t), Vector256.Create(0x7fffffff).AsSingle());
        var one = Avx.Or(Avx.And(x, Vector256.Create(int.MinValue).AsSingle()), Vector256.Create(1f));
        var r = Avx.Add(t, Avx.And(Avx.CompareGreaterThanOrEqual(half, Vector256.Create(0.5f)), one));
        r = Avx.Max(Avx.Min(r, Vector256.Create(127f)), Vector256.Create(-127f));
        return Avx.ConvertToVector256Int32WithTruncation(r);
    }

    static unsafe ushort BlockVector(float* w, sbyte* q)
    {
        int step = Vector<float>.Count;
        var m = Vector<int>.Zero;
        var absMask = new Vector<int>(0x7fffffff);
        for (int i = 0; i < BlockSize; i += step)
            m = Vector.Max(m, Vector.AsVectorInt32(Unsafe.ReadUnaligned<Vector<float>>(w + i)) & absMask);
        int amax = 0;
        for (int i = 0; i < step; i++) amax = Math.Max(amax, m[i]);
        if (!Scale(amax, out float d, out float id)) return QuantizeBlock(w, q, BlockSize);
        var vid = new Vector<float>(id);
        for (int i = 0; i < BlockSize; i += step)
        {
            var x = Unsafe.ReadUnaligned<Vector<float>>(w + i) * vid;
            var t = Vector.Truncate(x);
            var half = Vector.Abs(x - t);
            var one = Vector.AsVectorSingle((Vector.AsVectorInt32(x) & new Vector<int>(int.MinValue)) | Vector.AsVectorInt32(Vector<float>.One));
            var r = t + Vector.ConditionalSelect(Vector.GreaterThanOrEqual(half, new Vector<float>(0.5f)), one, Vector<float>.Zero);
            var n = Vector.ConvertToInt32(Vector.Max(Vector.Min(r, new Vector<float>(127f)), new Vector<float>(-127f)));
            for (int j = 0; j < step; j++) q[i + j] = (sbyte)n[j];
        }
        return HalfBits.F32ToF16(d);
    }

    /// <summary>
    /// The scalar rule: quantizes one block of <paramref name="n"/> ≤ 32 weights; returns the f16 bits of its scale.
    /// The vector kernels reproduce it bit for bit and call it for the blocks they leave alone.
    /// </summary>
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

    /// <summary>bf16 → f32 (exact: the bits shifted into the high half).</summary>
    static unsafe void WidenBf16(ushort* h, float* dst, int n, int mode)
    {
        int i = 0;
        if (mode == (int)KernelIsa.Avx512 && Avx512F.IsSupported)
            for (; i + 16 <= n; i += 16)
                Avx512F.Store(dst + i, Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512UInt32(Avx.LoadVector256(h + i)), 16).AsSingle());
        else if (mode >= (int)KernelIsa.Avx2 && Avx2.IsSupported)
            for (; i + 8 <= n; i += 8)
                Avx.Store(dst + i, Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32(h + i), 16).AsSingle());
        for (; i < n; i++) dst[i] = HalfBits.Bf16ToF32(h[i]);
    }

    /// <summary>IEEE f16 → f32 (exact, subnormals, infinities and NaN included; see <see cref="HalfBits.F16ToF32"/>).</summary>
    static unsafe void WidenF16(ushort* h, float* dst, int n, int mode)
    {
        int i = 0;
        if (mode == (int)KernelIsa.Avx512 && Avx512F.IsSupported)
            for (; i + 16 <= n; i += 16)
            {
                var x = Avx512F.ConvertToVector512UInt32(Avx.LoadVector256(h + i));
                var em = Avx512F.And(x, Vector512.Create(0x7fffu));
                var v = Avx512F.Multiply(Avx512F.ShiftLeftLogical(em, 13).AsSingle(), Vector512.Create(HalfBits.F16Magic)).AsUInt32();
                var inf = Avx512F.And(Vector512.GreaterThanOrEqual(em, Vector512.Create(0x7c00u)), Vector512.Create(0x7f800000u));
                var sign = Avx512F.ShiftLeftLogical(Avx512F.And(x, Vector512.Create(0x8000u)), 16);
                Avx512F.Store(dst + i, Avx512F.Or(Avx512F.Or(v, inf), sign).AsSingle());
            }
        else if (mode >= (int)KernelIsa.Avx2 && Avx2.IsSupported)
            for (; i + 8 <= n; i += 8)
            {
                var x = Avx2.ConvertToVector256Int32(h + i).AsUInt32();
                var em = Avx2.And(x, Vector256.Create(0x7fffu));
                var v = Avx.Multiply(Avx2.ShiftLeftLogical(em, 13).AsSingle(), Vector256.Create(HalfBits.F16Magic)).AsUInt32();
                var inf = Avx2.And(Avx2.CompareGreaterThan(em.AsInt32(), Vector256.Create(0x7bff)).AsUInt32(), Vector256.Create(0x7f800000u));
                var sign = Avx2.ShiftLeftLogical(Avx2.And(x, Vector256.Create(0x8000u)), 16);
                Avx.Store(dst + i, Avx2.Or(Avx2.Or(v, inf), sign).AsSingle());
            }
        for (; i < n; i++) dst[i] = HalfBits.F16ToF32(h[i]);
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

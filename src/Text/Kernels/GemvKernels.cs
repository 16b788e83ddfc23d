using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Llama3.Multimodal.Text;

/// <summary>Storage format of a weight matrix read by the decode kernels.</summary>
public enum WeightFormat
{
    /// <summary>bfloat16, 2 bytes per weight.</summary>
    BF16,
    /// <summary>IEEE half precision, 2 bytes per weight.</summary>
    F16,
    /// <summary>Blockwise symmetric int8 (<see cref="Q8"/>): 1 byte per weight plus one f16 scale per 32 weights.</summary>
    Q8,
    /// <summary>IEEE single precision, 4 bytes per weight.</summary>
    F32,
}

/// <summary>Instruction set used by the decode kernels.</summary>
public enum KernelIsa
{
    /// <summary><see cref="Vector{T}"/> code, any CPU.</summary>
    Portable,
    /// <summary>AVX2 with FMA (256-bit).</summary>
    Avx2,
    /// <summary>AVX-512 F (512-bit).</summary>
    Avx512,
}

/// <summary>Output element type written by a kernel.</summary>
internal enum OutFormat { F32, BF16, F16 }

/// <summary>One matrix-vector product: <c>y[r] = Σ_c W[r, c] · x[c]</c> for rows [0, Rows).</summary>
internal unsafe struct GemvJob
{
    public WeightFormat Format;
    /// <summary>First weight (row 0): ushort* for bf16/f16, sbyte* for q8.</summary>
    public void* W;
    /// <summary>Elements between consecutive weight rows.</summary>
    public long LdW;
    /// <summary>q8 scales (f16 bits), row-major [rows, ceil(K/32)].</summary>
    public ushort* Scales;
    /// <summary>Scales between consecutive rows.</summary>
    public long LdS;
    public int K;
    public int Rows;
    /// <summary>Input vector, f32, K elements.</summary>
    public float* X;
    /// <summary>bf16/f16 on AVX2 or AVX-512: the input reordered by <see cref="GemvKernels.InterleaveInput"/>.</summary>
    public float* XP;
    /// <summary>q8 with quantized activations: the input as int8, K elements (padded to whole blocks), or null.</summary>
    public sbyte* XQ;
    /// <summary>The input's block scales (f32, one per 32 elements) that go with <see cref="XQ"/>.</summary>
    public float* XS;
    /// <summary>Output vector, Rows elements of <see cref="YFormat"/>.</summary>
    public void* Y;
    public OutFormat YFormat;
    public KernelIsa Isa;
}

/// <summary>
/// The single-row (decode) kernels: weights stream once from memory, the activation vector stays in cache, and each pass
/// of the inner loop feeds four output rows from one load of x. Accumulation is in f32; q8 blocks are summed per block and
/// then scaled (<c>Σ_b s_b · Σ_i q_i x_i</c>). Every row is computed independently, so results do not depend on how rows
/// are split over threads.
/// </summary>
internal static unsafe class GemvKernels
{
    public const int Block = Q8.BlockSize;

    /// <summary>The best instruction set this CPU supports.</summary>
    public static KernelIsa Best { get; } =
        Avx512F.IsSupported ? KernelIsa.Avx512 : Avx2.IsSupported && Fma.IsSupported ? KernelIsa.Avx2 : KernelIsa.Portable;

    /// <summary>True when this CPU can run <paramref name="isa"/>.</summary>
    public static bool Supports(KernelIsa isa) => isa switch
    {
        KernelIsa.Avx512 => Avx512F.IsSupported,
        KernelIsa.Avx2 => Avx2.IsSupported && Fma.IsSupported,
        _ => true,
    };

    /// <summary>Computes rows [r0, r1) of <paramref name="j"/>.</summary>
    public static void Rows(in GemvJob j, int r0, int r1)
    {
        if (r1 <= r0) return;
        switch (j.Format)
        {
            case WeightFormat.F32:
                if (j.Isa == KernelIsa.Avx512 && Avx512F.IsSupported) F32Avx512(j, r0, r1);
                else if (j.Isa >= KernelIsa.Avx2 && Avx2.IsSupported && Fma.IsSupported) F32Avx2(j, r0, r1);
                else F32Portable(j, r0, r1);
                break;
            case WeightFormat.Q8 when j.XQ != null:
                if (j.Isa >= KernelIsa.Avx2 && Avx2.IsSupported && Fma.IsSupported) Q8IntAvx2(j, r0, r1);
                else Q8IntPortable(j, r0, r1);
                break;
            case WeightFormat.Q8:
                if (j.Isa == KernelIsa.Avx512 && Avx512F.IsSupported) Q8Avx512(j, r0, r1);
                else if (j.Isa >= KernelIsa.Avx2 && Avx2.IsSupported && Fma.IsSupported) Q8Avx2(j, r0, r1);
                else Q8Portable(j, r0, r1);
                break;
            case WeightFormat.BF16:
                Half16<Bf16>(j, r0, r1);
                break;
            default:
                Half16<F16>(j, r0, r1);
                break;
        }
    }

    static void Half16<TF>(in GemvJob j, int r0, int r1) where TF : struct, IHalfFormat
    {
        if (j.Isa == KernelIsa.Avx512 && Avx512F.IsSupported) HalfAvx512<TF>(j, r0, r1);
        else if (j.Isa >= KernelIsa.Avx2 && Avx2.IsSupported && Fma.IsSupported) HalfAvx2<TF>(j, r0, r1);
        else HalfPortable<TF>(j, r0, r1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Store(in GemvJob j, int r, float v)
    {
        switch (j.YFormat)
        {
            case OutFormat.F32: ((float*)j.Y)[r] = v; break;
            case OutFormat.BF16: ((ushort*)j.Y)[r] = HalfBits.F32ToBf16(v); break;
            default: ((ushort*)j.Y)[r] = HalfBits.F32ToF16(v); break;
        }
    }

    /// <summary>Row pointers for a group of four starting at <paramref name="r"/>; rows past <paramref name="r1"/> repeat the last valid one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int Group(int r, int r1) => Math.Min(4, r1 - r);

    // ---------------- prefetch ----------------

    /// <summary>
    /// Software prefetch of the next group of four rows while the current one streams: rows are only a few KiB, and the
    /// hardware prefetchers stop at every 4 KiB page, so each new row would otherwise start with a run of cache misses.
    /// Called once per pass of an inner loop that consumes <paramref name="lines"/> cache lines of the current group;
    /// <paramref name="next"/> advances by the same amount, so the next group is in cache when it starts. A next group of
    /// up to 16 KiB is fetched into L1, a larger one into L2 (it would push the current rows out of L1).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void PrefetchLines(byte* next, int lines, bool l1)
    {
        if (!Sse.IsSupported) return;
        if (l1) for (int i = 0; i < lines; i++) Sse.Prefetch0(next + i * 64);
        else for (int i = 0; i < lines; i++) Sse.Prefetch1(next + i * 64);
    }

    /// <summary>Whether the next group of four rows of <paramref name="rowBytes"/> is prefetched into L1 (else L2).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static bool PrefetchL1(long rowBytes) => 4 * rowBytes <= 16384;

    // ---------------- f32 ----------------

    static void F32Avx512(in GemvJob j, int r0, int r1)
    {
        int k = j.K;
        float* x = j.X;
        long ld = j.LdW;
        for (int r = r0; r < r1; r += 4)
        {
            int g = Group(r, r1);
            float* w0 = (float*)j.W + r * ld;
            float* w1 = g > 1 ? w0 + ld : w0, w2 = g > 2 ? w1 + ld : w1, w3 = g > 3 ? w2 + ld : w2;
            byte* pf = (byte*)(w0 + 4 * ld);
            bool l1 = PrefetchL1(k * 4L);
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
            int c = 0;
            for (; c + 32 <= k; c += 32)
            {
                PrefetchLines(pf, 8, l1);
                pf += 512;
                var x0 = Avx512F.LoadVector512(x + c);
                var x1 = Avx512F.LoadVector512(x + c + 16);
                a0 = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(w0 + c), x0, a0);
                a1 = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(w1 + c), x0, a1);
                a2 = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(w2 + c), x0, a2);
                a3 = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(w3 + c), x0, a3);
                b0 = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(w0 + c + 16), x1, b0);
                b1 = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(w1 + c + 16), x1, b1);
                b2 = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(w2 + c + 16), x1, b2);
                b3 = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(w3 + c + 16), x1, b3);
            }
            for (; c + 16 <= k; c += 16)
            {
                var x0 = Avx512F.LoadVector512(x + c);
                a0 = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(w0 + c), x0, a0);
                a1 = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(w1 + c), x0, a1);
                a2 = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(w2 + c), x0, a2);
                a3 = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(w3 + c), x0, a3);
            }
            float s0 = Vector512.Sum(a0 + b0), s1 = Vector512.Sum(a1 + b1), s2 = Vector512.Sum(a2 + b2), s3 = Vector512.Sum(a3 + b3);
            for (; c < k; c++)
            {
                float xc = x[c];
                s0 += w0[c] * xc; s1 += w1[c] * xc; s2 += w2[c] * xc; s3 += w3[c] * xc;
            }
            StoreGroup(j, r, g, s0, s1, s2, s3);
        }
    }

    static void F32Avx2(in GemvJob j, int r0, int r1)
    {
        int k = j.K;
        float* x = j.X;
        long ld = j.LdW;
        for (int r = r0; r < r1; r += 4)
        {
            int g = Group(r, r1);
            float* w0 = (float*)j.W + r * ld;
            float* w1 = g > 1 ? w0 + ld : w0, w2 = g > 2 ? w1 + ld : w1, w3 = g > 3 ? w2 + ld : w2;
            byte* pf = (byte*)(w0 + 4 * ld);
            bool l1 = PrefetchL1(k * 4L);
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default;
            int c = 0;
            for (; c + 16 <= k; c += 16)
            {
                PrefetchLines(pf, 4, l1);
                pf += 256;
                var x0 = Avx.LoadVector256(x + c);
                var x1 = Avx.LoadVector256(x + c + 8);
                a0 = Fma.MultiplyAdd(Avx.LoadVector256(w0 + c), x0, a0);
                a1 = Fma.MultiplyAdd(Avx.LoadVector256(w1 + c), x0, a1);
                a2 = Fma.MultiplyAdd(Avx.LoadVector256(w2 + c), x0, a2);
                a3 = Fma.MultiplyAdd(Avx.LoadVector256(w3 + c), x0, a3);
                b0 = Fma.MultiplyAdd(Avx.LoadVector256(w0 + c + 8), x1, b0);
                b1 = Fma.MultiplyAdd(Avx.LoadVector256(w1 + c + 8), x1, b1);
                b2 = Fma.MultiplyAdd(Avx.LoadVector256(w2 + c + 8), x1, b2);
                b3 = Fma.MultiplyAdd(Avx.LoadVector256(w3 + c + 8), x1, b3);
            }
            for (; c + 8 <= k; c += 8)
            {
                var x0 = Avx.LoadVector256(x + c);
                a0 = Fma.MultiplyAdd(Avx.LoadVector256(w0 + c), x0, a0);
                a1 = Fma.MultiplyAdd(Avx.LoadVector256(w1 + c), x0, a1);
                a2 = Fma.MultiplyAdd(Avx.LoadVector256(w2 + c), x0, a2);
                a3 = Fma.MultiplyAdd(Avx.LoadVector256(w3 + c), x0, a3);
            }
            float s0 = Vector256.Sum(a0 + b0), s1 = Vector256.Sum(a1 + b1), s2 = Vector256.Sum(a2 + b2), s3 = Vector256.Sum(a3 + b3);
            for (; c < k; c++)
            {
                float xc = x[c];
                s0 += w0[c] * xc; s1 += w1[c] * xc; s2 += w2[c] * xc; s3 += w3[c] * xc;
            }
            StoreGroup(j, r, g, s0, s1, s2, s3);
        }
    }

    static void F32Portable(in GemvJob j, int r0, int r1)
    {
        int k = j.K, vf = Vector<float>.Count;
        float* x = j.X;
        long ld = j.LdW;
        for (int r = r0; r < r1; r += 4)
        {
            int g = Group(r, r1);
            float* w0 = (float*)j.W + r * ld;
            float* w1 = g > 1 ? w0 + ld : w0, w2 = g > 2 ? w1 + ld : w1, w3 = g > 3 ? w2 + ld : w2;
            Vector<float> a0 = default, a1 = default, a2 = default, a3 = default;
            int c = 0;
            for (; c + vf <= k; c += vf)
            {
                var xv = Unsafe.ReadUnaligned<Vector<float>>(x + c);
                a0 += Unsafe.ReadUnaligned<Vector<float>>(w0 + c) * xv;
                a1 += Unsafe.ReadUnaligned<Vector<float>>(w1 + c) * xv;
                a2 += Unsafe.ReadUnaligned<Vector<float>>(w2 + c) * xv;
                a3 += Unsafe.ReadUnaligned<Vector<float>>(w3 + c) * xv;
            }
            float s0 = Vector.Sum(a0), s1 = Vector.Sum(a1), s2 = Vector.Sum(a2), s3 = Vector.Sum(a3);
            for (; c < k; c++)
            {
                float xc = x[c];
                s0 += w0[c] * xc; s1 += w1[c] * xc; s2 += w2[c] * xc; s3 += w3[c] * xc;
            }
            StoreGroup(j, r, g, s0, s1, s2, s3);
        }
    }

    // ---------------- bf16 / f16 ----------------

    internal interface IHalfFormat
    {
        static abstract float One(ushort h);
        static abstract Vector512<float> Load512(ushort* p);
        static abstract Vector256<float> Load256(ushort* p);
        static abstract void LoadVec(ushort* p, out Vector<float> lo, out Vector<float> hi);
        /// <summary>The even-indexed weights of 32-bit lanes holding two 16-bit weights each (low halves), as f32.</summary>
        static abstract Vector512<float> Even512(Vector512<uint> w);
        /// <summary>The odd-indexed weights (high halves), as f32.</summary>
        static abstract Vector512<float> Odd512(Vector512<uint> w);
        static abstract Vector256<float> Even256(Vector256<uint> w);
        static abstract Vector256<float> Odd256(Vector256<uint> w);
    }

    internal struct Bf16 : IHalfFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float One(ushort h) => HalfBits.Bf16ToF32(h);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Load512(ushort* p) =>
            Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512UInt32(Avx.LoadVector256(p)), 16).AsSingle();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Load256(ushort* p) =>
            Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32(p), 16).AsSingle();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void LoadVec(ushort* p, out Vector<float> lo, out Vector<float> hi)
        {
            Vector.Widen(Unsafe.ReadUnaligned<Vector<ushort>>(p), out var a, out var b);
            lo = Vector.AsVectorSingle(a << 16);
            hi = Vector.AsVectorSingle(b << 16);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Even512(Vector512<uint> w) => Avx512F.ShiftLeftLogical(w, 16).AsSingle();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Odd512(Vector512<uint> w) => Avx512F.And(w, Vector512.Create(0xFFFF0000u)).AsSingle();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Even256(Vector256<uint> w) => Avx2.ShiftLeftLogical(w, 16).AsSingle();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Odd256(Vector256<uint> w) => Avx2.And(w, Vector256.Create(0xFFFF0000u)).AsSingle();
    }

    internal struct F16 : IHalfFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float One(ushort h) => HalfBits.F16ToF32(h);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Load512(ushort* p)
        {
            var h = Avx512F.ConvertToVector512UInt32(Avx.LoadVector256(p));
            var em = Avx512F.And(h, Vector512.Create(0x7fffu));
            var v = Avx512F.Multiply(Avx512F.ShiftLeftLogical(em, 13).AsSingle(), Vector512.Create(HalfBits.F16Magic)).AsUInt32();
            var inf = Avx512F.And(Vector512.GreaterThanOrEqual(em, Vector512.Create(0x7c00u)), Vector512.Create(0x7f800000u));
            var sign = Avx512F.ShiftLeftLogical(Avx512F.And(h, Vector512.Create(0x8000u)), 16);
            return Avx512F.Or(Avx512F.Or(v, inf), sign).AsSingle();
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Load256(ushort* p)
        {
            var h = Avx2.ConvertToVector256Int32(p).AsUInt32();
            var em = Avx2.And(h, Vector256.Create(0x7fffu));
            var v = Avx.Multiply(Avx2.ShiftLeftLogical(em, 13).AsSingle(), Vector256.Create(HalfBits.F16Magic)).AsUInt32();
            var inf = Avx2.And(Avx2.CompareGreaterThan(em.AsInt32(), Vector256.Create(0x7bff)).AsUInt32(), Vector256.Create(0x7f800000u));
            var sign = Avx2.ShiftLeftLogical(Avx2.And(h, Vector256.Create(0x8000u)), 16);
            return Avx2.Or(Avx2.Or(v, inf), sign).AsSingle();
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void LoadVec(ushort* p, out Vector<float> lo, out Vector<float> hi)
        {
            Vector.Widen(Unsafe.ReadUnaligned<Vector<ushort>>(p), out var a, out var b);
            lo = Convert(a);
            hi = Convert(b);
        }

        // A weight in the high half of a 32-bit lane (low half ignored): the exponent and mantissa shifted down by 3 sit
        // where an f32's do, and scaling by 2^112 fixes the exponent bias (subnormals included); an exponent of all ones
        // (infinity, NaN) gets the f32 one.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector512<float> High512(Vector512<uint> t)
        {
            var em = Avx512F.ShiftRightLogical(Avx512F.And(t, Vector512.Create(0x7FFF0000u)), 3);
            var v = Avx512F.Multiply(em.AsSingle(), Vector512.Create(HalfBits.F16Magic)).AsUInt32();
            var inf = Avx512F.And(Vector512.GreaterThanOrEqual(em, Vector512.Create(0x0F800000u)), Vector512.Create(0x7f800000u));
            return Avx512F.TernaryLogic(v, inf, Avx512F.And(t, Vector512.Create(0x80000000u)), 0xFE).AsSingle();
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector256<float> High256(Vector256<uint> t)
        {
            var em = Avx2.ShiftRightLogical(Avx2.And(t, Vector256.Create(0x7FFF0000u)), 3);
            var v = Avx.Multiply(em.AsSingle(), Vector256.Create(HalfBits.F16Magic)).AsUInt32();
            var inf = Avx2.And(Avx2.CompareGreaterThan(em.AsInt32(), Vector256.Create(0x0F7FFFFF)).AsUInt32(), Vector256.Create(0x7f800000u));
            return Avx2.Or(Avx2.Or(v, inf), Avx2.And(t, Vector256.Create(0x80000000u))).AsSingle();
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Even512(Vector512<uint> w) => High512(Avx512F.ShiftLeftLogical(w, 16));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Odd512(Vector512<uint> w) => High512(w);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Even256(Vector256<uint> w) => High256(Avx2.ShiftLeftLogical(w, 16));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Odd256(Vector256<uint> w) => High256(w);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector<float> Convert(Vector<uint> h)
        {
            var em = h & new Vector<uint>(0x7fffu);
            var v = Vector.AsVectorUInt32(Vector.AsVectorSingle(em << 13) * new Vector<float>(HalfBits.F16Magic));
            var inf = Vector.GreaterThanOrEqual(em, new Vector<uint>(0x7c00u)) & new Vector<uint>(0x7f800000u);
            var sign = (h & new Vector<uint>(0x8000u)) << 16;
            return Vector.AsVectorSingle(v | inf | sign);
        }
    }

    /// <summary>
    /// The input reordered for the 16-bit kernels: in each chunk of <paramref name="chunk"/> elements (32 for AVX-512,
    /// 16 for AVX2) the even-indexed elements first, then the odd ones. A 32-bit lane of the weight row then holds one
    /// even and one odd weight, which widen in place (a shift and a mask for bf16) with no cross-lane shuffle.
    /// Elements past the last whole chunk are left out (the kernels read them from the input itself).
    /// </summary>
    public static void InterleaveInput(float* x, int k, int chunk, float* dst)
    {
        int half = chunk / 2;
        for (int c = 0; c + chunk <= k; c += chunk)
            for (int i = 0; i < half; i++)
            {
                dst[c + i] = x[c + 2 * i];
                dst[c + half + i] = x[c + 2 * i + 1];
            }
    }

    static void HalfAvx512<TF>(in GemvJob j, int r0, int r1) where TF : struct, IHalfFormat
    {
        int k = j.K;
        float* x = j.X, xp = j.XP;
        for (int r = r0; r < r1; r += 4)
        {
            int g = Group(r, r1);
            ushort* w0 = (ushort*)j.W + r * j.LdW;
            ushort* w1 = g > 1 ? w0 + j.LdW : w0, w2 = g > 2 ? w1 + j.LdW : w1, w3 = g > 3 ? w2 + j.LdW : w2;
            byte* pf = (byte*)(w0 + 4 * j.LdW);
            bool l1 = PrefetchL1(k * 2L);
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
            int c = 0;
            for (; c + 32 <= k; c += 32)
            {
                PrefetchLines(pf, 4, l1);
                pf += 256;
                var xe = Avx512F.LoadVector512(xp + c);
                var xo = Avx512F.LoadVector512(xp + c + 16);
                var v0 = Avx512F.LoadVector512((uint*)(w0 + c));
                var v1 = Avx512F.LoadVector512((uint*)(w1 + c));
                var v2 = Avx512F.LoadVector512((uint*)(w2 + c));
                var v3 = Avx512F.LoadVector512((uint*)(w3 + c));
                a0 = Avx512F.FusedMultiplyAdd(TF.Even512(v0), xe, a0);
                b0 = Avx512F.FusedMultiplyAdd(TF.Odd512(v0), xo, b0);
                a1 = Avx512F.FusedMultiplyAdd(TF.Even512(v1), xe, a1);
                b1 = Avx512F.FusedMultiplyAdd(TF.Odd512(v1), xo, b1);
                a2 = Avx512F.FusedMultiplyAdd(TF.Even512(v2), xe, a2);
                b2 = Avx512F.FusedMultiplyAdd(TF.Odd512(v2), xo, b2);
                a3 = Avx512F.FusedMultiplyAdd(TF.Even512(v3), xe, a3);
                b3 = Avx512F.FusedMultiplyAdd(TF.Odd512(v3), xo, b3);
            }
            float s0 = Vector512.Sum(a0 + b0), s1 = Vector512.Sum(a1 + b1), s2 = Vector512.Sum(a2 + b2), s3 = Vector512.Sum(a3 + b3);
            for (; c < k; c++)
            {
                float xc = x[c];
                s0 += TF.One(w0[c]) * xc; s1 += TF.One(w1[c]) * xc; s2 += TF.One(w2[c]) * xc; s3 += TF.One(w3[c]) * xc;
            }
            StoreGroup(j, r, g, s0, s1, s2, s3);
        }
    }

    static void HalfAvx2<TF>(in GemvJob j, int r0, int r1) where TF : struct, IHalfFormat
    {
        int k = j.K;
        float* x = j.X, xp = j.XP;
        for (int r = r0; r < r1; r += 4)
        {
            int g = Group(r, r1);
            ushort* w0 = (ushort*)j.W + r * j.LdW;
            ushort* w1 = g > 1 ? w0 + j.LdW : w0, w2 = g > 2 ? w1 + j.LdW : w1, w3 = g > 3 ? w2 + j.LdW : w2;
            byte* pf = (byte*)(w0 + 4 * j.LdW);
            bool l1 = PrefetchL1(k * 2L);
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default;
            int c = 0;
            for (; c + 16 <= k; c += 16)
            {
                PrefetchLines(pf, 2, l1);
                pf += 128;
                var xe = Avx.LoadVector256(xp + c);
                var xo = Avx.LoadVector256(xp + c + 8);
                var v0 = Avx.LoadVector256((uint*)(w0 + c));
                var v1 = Avx.LoadVector256((uint*)(w1 + c));
                var v2 = Avx.LoadVector256((uint*)(w2 + c));
                var v3 = Avx.LoadVector256((uint*)(w3 + c));
                a0 = Fma.MultiplyAdd(TF.Even256(v0), xe, a0);
                b0 = Fma.MultiplyAdd(TF.Odd256(v0), xo, b0);
                a1 = Fma.MultiplyAdd(TF.Even256(v1), xe, a1);
                b1 = Fma.MultiplyAdd(TF.Odd256(v1), xo, b1);
                a2 = Fma.MultiplyAdd(TF.Even256(v2), xe, a2);
                b2 = Fma.MultiplyAdd(TF.Odd256(v2), xo, b2);
                a3 = Fma.MultiplyAdd(TF.Even256(v3), xe, a3);
                b3 = Fma.MultiplyAdd(TF.Odd256(v3), xo, b3);
            }
            float s0 = Vector256.Sum(a0 + b0), s1 = Vector256.Sum(a1 + b1), s2 = Vector256.Sum(a2 + b2), s3 = Vector256.Sum(a3 + b3);
            for (; c < k; c++)
            {
                float xc = x[c];
                s0 += TF.One(w0[c]) * xc; s1 += TF.One(w1[c]) * xc; s2 += TF.One(w2[c]) * xc; s3 += TF.One(w3[c]) * xc;
            }
            StoreGroup(j, r, g, s0, s1, s2, s3);
        }
    }

    static void HalfPortable<TF>(in GemvJob j, int r0, int r1) where TF : struct, IHalfFormat
    {
        int k = j.K, vf = Vector<float>.Count, step = 2 * vf;
        float* x = j.X;
        for (int r = r0; r < r1; r += 4)
        {
            int g = Group(r, r1);
            ushort* w0 = (ushort*)j.W + r * j.LdW;
            ushort* w1 = g > 1 ? w0 + j.LdW : w0, w2 = g > 2 ? w1 + j.LdW : w1, w3 = g > 3 ? w2 + j.LdW : w2;
            Vector<float> a0 = default, a1 = default, a2 = default, a3 = default;
            int c = 0;
            for (; c + step <= k; c += step)
            {
                var x0 = Unsafe.ReadUnaligned<Vector<float>>(x + c);
                var x1 = Unsafe.ReadUnaligned<Vector<float>>(x + c + vf);
                TF.LoadVec(w0 + c, out var l, out var h); a0 += l * x0 + h * x1;
                TF.LoadVec(w1 + c, out l, out h); a1 += l * x0 + h * x1;
                TF.LoadVec(w2 + c, out l, out h); a2 += l * x0 + h * x1;
                TF.LoadVec(w3 + c, out l, out h); a3 += l * x0 + h * x1;
            }
            float s0 = Vector.Sum(a0), s1 = Vector.Sum(a1), s2 = Vector.Sum(a2), s3 = Vector.Sum(a3);
            for (; c < k; c++)
            {
                float xc = x[c];
                s0 += TF.One(w0[c]) * xc; s1 += TF.One(w1[c]) * xc; s2 += TF.One(w2[c]) * xc; s3 += TF.One(w3[c]) * xc;
            }
            StoreGroup(j, r, g, s0, s1, s2, s3);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StoreGroup(in GemvJob j, int r, int g, float s0, float s1, float s2, float s3)
    {
        Store(j, r, s0);
        if (g > 1) Store(j, r + 1, s1);
        if (g > 2) Store(j, r + 2, s2);
        if (g > 3) Store(j, r + 3, s3);
    }

    // ---------------- q8 ----------------

    /// <summary>Σ over the last, partial block (fewer than 32 weights) of one row, unscaled.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float TailDot(sbyte* q, float* x, int from, int to)
    {
        float s = 0;
        for (int c = from; c < to; c++) s += q[c] * x[c];
        return s;
    }

    /// <summary>Blocks whose scales are widened to f32 at a time (per row of a group of four).</summary>
    const int ScaleChunk = 128;

    /// <summary>Widens <paramref name="n"/> f16 scales to f32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void WidenScales(ushort* src, float* dst, int n, KernelIsa isa)
    {
        int i = 0;
        if (isa == KernelIsa.Avx512 && Avx512F.IsSupported)
            for (; i + 16 <= n; i += 16) Avx512F.Store(dst + i, F16.Load512(src + i));
        else if (Avx2.IsSupported)
            for (; i + 8 <= n; i += 8) Avx.Store(dst + i, F16.Load256(src + i));
        for (; i < n; i++) dst[i] = HalfBits.F16ToF32(src[i]);
    }

    static void Q8Avx512(in GemvJob j, int r0, int r1)
    {
        int k = j.K, full = k / Block, nb = (k + Block - 1) / Block;
        float* x = j.X;
        float* sf = stackalloc float[4 * ScaleChunk];
        for (int r = r0; r < r1; r += 4)
        {
            int g = Group(r, r1);
            sbyte* q0 = (sbyte*)j.W + r * j.LdW;
            sbyte* q1 = g > 1 ? q0 + j.LdW : q0, q2 = g > 2 ? q1 + j.LdW : q1, q3 = g > 3 ? q2 + j.LdW : q2;
            ushort* d0 = j.Scales + r * j.LdS;
            ushort* d1 = g > 1 ? d0 + j.LdS : d0, d2 = g > 2 ? d1 + j.LdS : d1, d3 = g > 3 ? d2 + j.LdS : d2;
            byte* pf = (byte*)(q0 + 4 * j.LdW);
            bool l1 = PrefetchL1(k);
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int c0 = 0; c0 < full; c0 += ScaleChunk)
            {
                int n = Math.Min(ScaleChunk, full - c0);
                WidenScales(d0 + c0, sf, n, KernelIsa.Avx512); WidenScales(d1 + c0, sf + ScaleChunk, n, KernelIsa.Avx512);
                WidenScales(d2 + c0, sf + 2 * ScaleChunk, n, KernelIsa.Avx512); WidenScales(d3 + c0, sf + 3 * ScaleChunk, n, KernelIsa.Avx512);
                for (int i = 0; i < n; i++)
                {
                    int c = (c0 + i) * Block;
                    PrefetchLines(pf + 4 * c, 2, l1);
                    var x0 = Avx512F.LoadVector512(x + c);
                    var x1 = Avx512F.LoadVector512(x + c + 16);
                    a0 = Avx512F.FusedMultiplyAdd(Dot512(q0 + c, x0, x1), Vector512.Create(sf[i]), a0);
                    a1 = Avx512F.FusedMultiplyAdd(Dot512(q1 + c, x0, x1), Vector512.Create(sf[ScaleChunk + i]), a1);
                    a2 = Avx512F.FusedMultiplyAdd(Dot512(q2 + c, x0, x1), Vector512.Create(sf[2 * ScaleChunk + i]), a2);
                    a3 = Avx512F.FusedMultiplyAdd(Dot512(q3 + c, x0, x1), Vector512.Create(sf[3 * ScaleChunk + i]), a3);
                }
            }
            float s0 = Vector512.Sum(a0), s1 = Vector512.Sum(a1), s2 = Vector512.Sum(a2), s3 = Vector512.Sum(a3);
            if (full < nb)
            {
                int c = full * Block;
                s0 += HalfBits.F16ToF32(d0[full]) * TailDot(q0, x, c, k);
                s1 += HalfBits.F16ToF32(d1[full]) * TailDot(q1, x, c, k);
                s2 += HalfBits.F16ToF32(d2[full]) * TailDot(q2, x, c, k);
                s3 += HalfBits.F16ToF32(d3[full]) * TailDot(q3, x, c, k);
            }
            StoreGroup(j, r, g, s0, s1, s2, s3);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<float> Dot512(sbyte* q, Vector512<float> x0, Vector512<float> x1)
    {
        var w0 = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Sse2.LoadVector128(q)));
        var w1 = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Sse2.LoadVector128(q + 16)));
        return Avx512F.FusedMultiplyAdd(w1, x1, Avx512F.Multiply(w0, x0));
    }

    static void Q8Avx2(in GemvJob j, int r0, int r1)
    {
        int k = j.K, full = k / Block, nb = (k + Block - 1) / Block;
        float* x = j.X;
        float* sf = stackalloc float[4 * ScaleChunk];
        for (int r = r0; r < r1; r += 4)
        {
            int g = Group(r, r1);
            sbyte* q0 = (sbyte*)j.W + r * j.LdW;
            sbyte* q1 = g > 1 ? q0 + j.LdW : q0, q2 = g > 2 ? q1 + j.LdW : q1, q3 = g > 3 ? q2 + j.LdW : q2;
            ushort* d0 = j.Scales + r * j.LdS;
            ushort* d1 = g > 1 ? d0 + j.LdS : d0, d2 = g > 2 ? d1 + j.LdS : d1, d3 = g > 3 ? d2 + j.LdS : d2;
            byte* pf = (byte*)(q0 + 4 * j.LdW);
            bool l1 = PrefetchL1(k);
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int c0 = 0; c0 < full; c0 += ScaleChunk)
            {
                int n = Math.Min(ScaleChunk, full - c0);
                WidenScales(d0 + c0, sf, n, KernelIsa.Avx2); WidenScales(d1 + c0, sf + ScaleChunk, n, KernelIsa.Avx2);
                WidenScales(d2 + c0, sf + 2 * ScaleChunk, n, KernelIsa.Avx2); WidenScales(d3 + c0, sf + 3 * ScaleChunk, n, KernelIsa.Avx2);
                for (int i = 0; i < n; i++)
                {
                    int c = (c0 + i) * Block;
                    PrefetchLines(pf + 4 * c, 2, l1);
                    var x0 = Avx.LoadVector256(x + c);
                    var x1 = Avx.LoadVector256(x + c + 8);
                    var x2 = Avx.LoadVector256(x + c + 16);
                    var x3 = Avx.LoadVector256(x + c + 24);
                    a0 = Fma.MultiplyAdd(Dot256(q0 + c, x0, x1, x2, x3), Vector256.Create(sf[i]), a0);
                    a1 = Fma.MultiplyAdd(Dot256(q1 + c, x0, x1, x2, x3), Vector256.Create(sf[ScaleChunk + i]), a1);
                    a2 = Fma.MultiplyAdd(Dot256(q2 + c, x0, x1, x2, x3), Vector256.Create(sf[2 * ScaleChunk + i]), a2);
                    a3 = Fma.MultiplyAdd(Dot256(q3 + c, x0, x1, x2, x3), Vector256.Create(sf[3 * ScaleChunk + i]), a3);
                }
            }
            float s0 = Vector256.Sum(a0), s1 = Vector256.Sum(a1), s2 = Vector256.Sum(a2), s3 = Vector256.Sum(a3);
            if (full < nb)
            {
                int c = full * Block;
                s0 += HalfBits.F16ToF32(d0[full]) * TailDot(q0, x, c, k);
                s1 += HalfBits.F16ToF32(d1[full]) * TailDot(q1, x, c, k);
                s2 += HalfBits.F16ToF32(d2[full]) * TailDot(q2, x, c, k);
                s3 += HalfBits.F16ToF32(d3[full]) * TailDot(q3, x, c, k);
            }
            StoreGroup(j, r, g, s0, s1, s2, s3);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Dot256(sbyte* q, Vector256<float> x0, Vector256<float> x1, Vector256<float> x2, Vector256<float> x3)
    {
        var p = Avx.Multiply(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q)), x0);
        var s = Avx.Multiply(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q + 8)), x1);
        p = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q + 16)), x2, p);
        s = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q + 24)), x3, s);
        return Avx.Add(p, s);
    }

    static void Q8Portable(in GemvJob j, int r0, int r1)
    {
        int k = j.K, full = k / Block, nb = (k + Block - 1) / Block, vf = Vector<float>.Count, vb = Vector<sbyte>.Count;
        bool vector = Block % vb == 0;
        float* x = j.X;
        for (int r = r0; r < r1; r++)
        {
            sbyte* q = (sbyte*)j.W + r * j.LdW;
            ushort* d = j.Scales + r * j.LdS;
            float s = 0;
            for (int b = 0; b < full; b++)
            {
                int c0 = b * Block;
                float dot;
                if (vector)
                {
                    Vector<float> acc = default;
                    for (int c = c0; c < c0 + Block; c += vb)
                    {
                        Vector.Widen(Unsafe.ReadUnaligned<Vector<sbyte>>(q + c), out var lo, out var hi);
                        Vector.Widen(lo, out var i0, out var i1);
                        Vector.Widen(hi, out var i2, out var i3);
                        acc += Vector.ConvertToSingle(i0) * Unsafe.ReadUnaligned<Vector<float>>(x + c)
                            + Vector.ConvertToSingle(i1) * Unsafe.ReadUnaligned<Vector<float>>(x + c + vf)
                            + Vector.ConvertToSingle(i2) * Unsafe.ReadUnaligned<Vector<float>>(x + c + 2 * vf)
                            + Vector.ConvertToSingle(i3) * Unsafe.ReadUnaligned<Vector<float>>(x + c + 3 * vf);
                    }
                    dot = Vector.Sum(acc);
                }
                else dot = TailDot(q, x, c0, c0 + Block);
                s += HalfBits.F16ToF32(d[b]) * dot;
            }
            if (full < nb) s += HalfBits.F16ToF32(d[full]) * TailDot(q, x, full * Block, k);
            Store(j, r, s);
        }
    }

    // ---------------- q8 with quantized activations ----------------

    /// <summary>
    /// Quantizes the input row with the weights' rule (<see cref="Q8"/>: per block of 32, <c>d = max|x| / 127</c>,
    /// <c>q = round(x / d)</c>), so that each block's product is an exact integer dot product: <c>y = Σ_b (dw_b · dx_b) ·
    /// Σ_i qw_i · qx_i</c>. <paramref name="xq"/> holds whole blocks (the tail block is zero-padded); <paramref name="xs"/>
    /// keeps the scales in f32.
    /// </summary>
    public static void QuantizeActivations(float* x, int k, sbyte* xq, float* xs)
    {
        int nb = (k + Block - 1) / Block;
        for (int b = 0; b < nb; b++)
        {
            int c0 = b * Block, n = Math.Min(Block, k - c0);
            float amax = 0;
            for (int i = 0; i < n; i++) amax = MathF.Max(amax, MathF.Abs(x[c0 + i]));
            float d = amax / 127f, id = d != 0 ? 1f / d : 0f;
            for (int i = 0; i < n; i++)
                xq[c0 + i] = (sbyte)Math.Clamp(MathF.Round(x[c0 + i] * id, MidpointRounding.AwayFromZero), -127f, 127f);
            for (int i = n; i < Block; i++) xq[c0 + i] = 0;
            xs[b] = d;
        }
    }

    /// <summary>Integer dot product of one (possibly partial) block: Σ q[c]·x[c] for c in [from, to).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int IntTail(sbyte* q, sbyte* x, int from, int to)
    {
        int s = 0;
        for (int c = from; c < to; c++) s += q[c] * x[c];
        return s;
    }

    /// <summary>Combined scales <c>f16(dw) · dx</c> of <paramref name="n"/> blocks.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void BlockScales(ushort* dw, float* dx, float* dst, int n)
    {
        int i = 0;
        if (Avx2.IsSupported)
            for (; i + 8 <= n; i += 8) Avx.Store(dst + i, Avx.Multiply(F16.Load256(dw + i), Avx.LoadVector256(dx + i)));
        for (; i < n; i++) dst[i] = HalfBits.F16ToF32(dw[i]) * dx[i];
    }

    /// <summary>
    /// One block of 32 weights times the quantized input, as 8 int32 partial sums: <c>|w| · (x · sign w)</c> through
    /// <c>vpmaddubsw</c> (unsigned × signed byte pairs; |w|, |x| ≤ 127, so no pair saturates) and <c>vpmaddwd</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> IntDot256(sbyte* q, Vector256<sbyte> xv)
    {
        var w = Avx.LoadVector256(q);
        var p16 = Avx2.MultiplyAddAdjacent(Avx2.Abs(w), Avx2.Sign(xv, w));
        return Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(p16, Vector256.Create((short)1)));
    }

    static void Q8IntAvx2(in GemvJob j, int r0, int r1)
    {
        int k = j.K, full = k / Block, nb = (k + Block - 1) / Block;
        sbyte* xq = j.XQ;
        float* xs = j.XS;
        float* sf = stackalloc float[4 * ScaleChunk];
        for (int r = r0; r < r1; r += 4)
        {
            int g = Group(r, r1);
            sbyte* q0 = (sbyte*)j.W + r * j.LdW;
            sbyte* q1 = g > 1 ? q0 + j.LdW : q0, q2 = g > 2 ? q1 + j.LdW : q1, q3 = g > 3 ? q2 + j.LdW : q2;
            ushort* d0 = j.Scales + r * j.LdS;
            ushort* d1 = g > 1 ? d0 + j.LdS : d0, d2 = g > 2 ? d1 + j.LdS : d1, d3 = g > 3 ? d2 + j.LdS : d2;
            byte* pf = (byte*)(q0 + 4 * j.LdW);
            bool l1 = PrefetchL1(k);
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int c0 = 0; c0 < full; c0 += ScaleChunk)
            {
                int n = Math.Min(ScaleChunk, full - c0);
                BlockScales(d0 + c0, xs + c0, sf, n); BlockScales(d1 + c0, xs + c0, sf + ScaleChunk, n);
                BlockScales(d2 + c0, xs + c0, sf + 2 * ScaleChunk, n); BlockScales(d3 + c0, xs + c0, sf + 3 * ScaleChunk, n);
                for (int i = 0; i < n; i++)
                {
                    int c = (c0 + i) * Block;
                    PrefetchLines(pf + 4 * c, 2, l1);
                    var xv = Avx.LoadVector256(xq + c);
                    a0 = Fma.MultiplyAdd(IntDot256(q0 + c, xv), Vector256.Create(sf[i]), a0);
                    a1 = Fma.MultiplyAdd(IntDot256(q1 + c, xv), Vector256.Create(sf[ScaleChunk + i]), a1);
                    a2 = Fma.MultiplyAdd(IntDot256(q2 + c, xv), Vector256.Create(sf[2 * ScaleChunk + i]), a2);
                    a3 = Fma.MultiplyAdd(IntDot256(q3 + c, xv), Vector256.Create(sf[3 * ScaleChunk + i]), a3);
                }
            }
            float s0 = Vector256.Sum(a0), s1 = Vector256.Sum(a1), s2 = Vector256.Sum(a2), s3 = Vector256.Sum(a3);
            if (full < nb)
            {
                int c = full * Block;
                float dx = xs[full];
                s0 += HalfBits.F16ToF32(d0[full]) * dx * IntTail(q0, xq, c, k);
                s1 += HalfBits.F16ToF32(d1[full]) * dx * IntTail(q1, xq, c, k);
                s2 += HalfBits.F16ToF32(d2[full]) * dx * IntTail(q2, xq, c, k);
                s3 += HalfBits.F16ToF32(d3[full]) * dx * IntTail(q3, xq, c, k);
            }
            StoreGroup(j, r, g, s0, s1, s2, s3);
        }
    }

    static void Q8IntPortable(in GemvJob j, int r0, int r1)
    {
        int k = j.K, full = k / Block, nb = (k + Block - 1) / Block, vb = Vector<sbyte>.Count;
        bool vector = Block % vb == 0;
        sbyte* xq = j.XQ;
        float* xs = j.XS;
        for (int r = r0; r < r1; r++)
        {
            sbyte* q = (sbyte*)j.W + r * j.LdW;
            ushort* d = j.Scales + r * j.LdS;
            float s = 0;
            for (int b = 0; b < full; b++)
            {
                int c0 = b * Block, dot;
                if (vector)
                {
                    Vector<int> acc = default;
                    for (int c = c0; c < c0 + Block; c += vb)
                    {
                        Vector.Widen(Unsafe.ReadUnaligned<Vector<sbyte>>(q + c), out var wl, out var wh);
                        Vector.Widen(Unsafe.ReadUnaligned<Vector<sbyte>>(xq + c), out var xl, out var xh);
                        // |products| ≤ 127², so each fits a short.
                        Vector.Widen(wl * xl, out var p0, out var p1);
                        Vector.Widen(wh * xh, out var p2, out var p3);
                        acc += p0 + p1 + p2 + p3;
                    }
                    dot = Vector.Sum(acc);
                }
                else dot = IntTail(q, xq, c0, c0 + Block);
                s += HalfBits.F16ToF32(d[b]) * xs[b] * dot;
            }
            if (full < nb) s += HalfBits.F16ToF32(d[full]) * xs[full] * IntTail(q, xq, full * Block, k);
            Store(j, r, s);
        }
    }
}

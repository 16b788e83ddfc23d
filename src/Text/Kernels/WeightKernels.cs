using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>
/// Linear layers for decoding on the CPU. One input row (decode) runs the C# kernels of this library over f32, bf16, f16
/// or <see cref="Q8"/> weights in libtorch memory, with the rows of the weight split over a persistent thread pool;
/// several rows (prefill) use libtorch's GEMM (q8: on dequantized tiles of the weight), so prefill and training results
/// are libtorch's. The f32 kernel sums in a different order than libtorch's GEMV, so a decoded row can differ from
/// libtorch's in the last bits (within f32 rounding of Σ|w||x|); <see cref="F32Kernels"/> = false restores libtorch's.
/// </summary>
public static unsafe class WeightKernels
{
    static KernelIsa _isa = GemvKernels.Best;

    /// <summary>Instruction set of the decode kernels (default: the best this CPU has; AVX-512, AVX2+FMA, or portable).</summary>
    public static KernelIsa Isa
    {
        get => _isa;
        set => _isa = GemvKernels.Supports(value) ? value : throw new PlatformNotSupportedException($"this CPU cannot run the {value} kernels.");
    }

    /// <summary>The best instruction set this CPU supports.</summary>
    public static KernelIsa BestIsa => GemvKernels.Best;

    /// <summary>Route single-row bf16/f16 products through the kernels (default true; false uses libtorch).</summary>
    public static bool HalfKernels { get; set; } = true;

    /// <summary>Route single-row f32 products through the kernels (default true; false uses libtorch, <see cref="SplitGemv"/>).</summary>
    public static bool F32Kernels { get; set; } = true;

    /// <summary>
    /// Run the decode step of one sequence (one new token with a KV cache, on the CPU) layer by layer in C# on the
    /// tensors' memory: norms, rotary embedding, the cache write, attention over the cache, SiLU and the residuals
    /// between the kernel products, with no libtorch call in between (default true). False runs each layer through
    /// libtorch's operators. Either gives the same tokens; the sums in norms and attention run in another order, so logits
    /// may differ in the last bits. Self-attention layers only: cross-attention blocks run their own forward.
    /// </summary>
    public static bool FusedDecode { get; set; } = true;

    /// <summary>
    /// Single-row q8 products quantize the input row per block of 32 with the weights' rule and sum integer products
    /// (as GGUF runtimes do with Q8_0; default true). False keeps the input in f32 and widens each weight instead: more
    /// accurate by the input's rounding (at most half a step of 1/127 of each block's largest |x|), and slower.
    /// </summary>
    public static bool QuantizeQ8Activations { get; set; } = true;

    /// <summary>
    /// How long (µs) an idle pool thread spins for the next product before it blocks (default 200). A decode step
    /// issues its products a few tens of µs apart, and waking a blocked thread costs about as much as a small product.
    /// </summary>
    public static int SpinMicroseconds
    {
        get => RowPool.SpinMicroseconds;
        set => RowPool.SpinMicroseconds = Math.Max(0, value);
    }

    /// <summary>Weights smaller than this (bytes) run on the calling thread only.</summary>
    public static long MinParallelBytes { get; set; } = 256L << 10;

    /// <summary>
    /// Up to this many rows (a short prompt), a q8 product runs the decode kernel with f32 input rows over tiles of weight
    /// rows small enough to stay in cache, once per input row, instead of dequantizing the weight for libtorch's GEMM
    /// (default 8). Both are the product of the dequantized weight with the f32 input; the sums run in another order.
    /// </summary>
    public static int FewRows { get; set; } = 8;

    /// <summary>Bytes of f32 weight dequantized per tile in the q8 prefill path (default 4 MiB).</summary>
    public static long PrefillTileBytes { get; set; } = 4L << 20;

    /// <summary>Threads used for one product, the caller included (default: all processors).</summary>
    public static int Threads => RowPool.Shared.Threads;

    /// <summary>
    /// <c>x Wᵀ</c> for x [..., k] and W [n, k]: W int8 with <paramref name="scales"/> (<see cref="Q8"/>), bf16, f16 or f32.
    /// The result has x's dtype.
    /// </summary>
    public static Tensor Linear(Tensor x, Tensor w, Tensor? scales = null)
    {
        if (w.dtype == ScalarType.Int8)
        {
            if (scales is null) throw new ArgumentException("an int8 weight needs its q8 scales.");
            return Q8Linear(x, w, scales);
        }
        if (HalfKernels && (w.dtype == ScalarType.BFloat16 || w.dtype == ScalarType.Float16) && !torch.is_grad_enabled() && FitsKernel(x, w))
            return Gemv(x, w, null, w.dtype == ScalarType.BFloat16 ? WeightFormat.BF16 : WeightFormat.F16);
        if (F32Kernels && w.dtype == ScalarType.Float32 && !torch.is_grad_enabled() && FitsKernel(x, w))
            return Gemv(x, w, null, WeightFormat.F32);
        return SplitGemv.Linear(x, w);
    }

    static bool FitsKernel(Tensor x, Tensor w) =>
        w.device_type == DeviceType.CPU && x.device_type == DeviceType.CPU && w.dim() == 2 && w.stride(1) == 1
        && x.numel() == x.shape[^1] && x.shape[^1] == w.shape[1] && w.shape[1] <= int.MaxValue && w.shape[0] <= int.MaxValue
        && x.dtype is ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16;

    static Tensor Q8Linear(Tensor x, Tensor q, Tensor scales)
    {
        long n = q.shape[0], k = q.shape[1];
        Q8.CheckShapes(q, scales, n, k, "q8 linear");
        if (x.shape[^1] != k) throw new ArgumentException($"q8 linear: input has {x.shape[^1]} features but the weight expects {k}.");
        if (torch.is_grad_enabled() && x.requires_grad) throw new NotSupportedException("q8 weights are for inference: no gradients flow through them.");
        if (q.device_type != DeviceType.CPU || x.device_type != DeviceType.CPU || q.stride(1) != 1 || scales.stride(1) != 1)
        {
            using var wd = Q8.Dequantize(q, scales, x.dtype);
            return nn.functional.linear(x, wd);
        }
        if (FitsKernel(x, q)) return Gemv(x, q, scales, WeightFormat.Q8);
        if (x.numel() / k <= FewRows && n <= int.MaxValue && k <= int.MaxValue
            && x.dtype is ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16)
            return Q8FewRows(x, q, scales);
        return Q8Prefill(x, q, scales);
    }

    [ThreadStatic] static float* _xBuf;
    [ThreadStatic] static long _xCap;
    [ThreadStatic] static sbyte* _xqBuf;
    [ThreadStatic] static float* _xsBuf;
    [ThreadStatic] static long _xqCap;

    [ThreadStatic] static float* _xpBuf;
    [ThreadStatic] static long _xpCap;

    /// <summary>The input row reordered for the 16-bit kernels (<see cref="GemvKernels.InterleaveInput"/>), in a per-thread buffer.</summary>
    static float* InterleavedInput(float* x, long k, KernelIsa isa)
    {
        if (_xpCap < k)
        {
            if (_xpBuf != null) NativeMemory.AlignedFree(_xpBuf);
            _xpCap = Math.Max(k, 1024);
            _xpBuf = (float*)NativeMemory.AlignedAlloc((nuint)(_xpCap * sizeof(float)), 64);
        }
        GemvKernels.InterleaveInput(x, (int)k, isa == KernelIsa.Avx512 ? 32 : 16, _xpBuf);
        return _xpBuf;
    }

    /// <summary>The input row quantized per block (<see cref="GemvKernels.QuantizeActivations"/>), in per-thread buffers.</summary>
    static void QuantizeInput(float* x, long k, out sbyte* xq, out float* xs)
    {
        long nb = Q8.Blocks(k);
        if (_xqCap < nb)
        {
            if (_xqBuf != null) { NativeMemory.AlignedFree(_xqBuf); NativeMemory.AlignedFree(_xsBuf); }
            _xqCap = Math.Max(nb, 64);
            _xqBuf = (sbyte*)NativeMemory.AlignedAlloc((nuint)(_xqCap * Q8.BlockSize), 64);
            _xsBuf = (float*)NativeMemory.AlignedAlloc((nuint)(_xqCap * sizeof(float)), 64);
        }
        GemvKernels.QuantizeActivations(x, (int)k, _xqBuf, _xsBuf);
        xq = _xqBuf;
        xs = _xsBuf;
    }

    static float* InputAsF32(Tensor x, long k, out Tensor? keep)
    {
        keep = null;
        if (x.dtype == ScalarType.Float32)
        {
            if (x.is_contiguous()) return (float*)TensorPointers.Data(x);
            keep = x.contiguous();
            return (float*)TensorPointers.Data(keep);
        }
        if (_xCap < k)
        {
            if (_xBuf != null) NativeMemory.AlignedFree(_xBuf);
            _xCap = Math.Max(k, 1024);
            _xBuf = (float*)NativeMemory.AlignedAlloc((nuint)(_xCap * sizeof(float)), 64);
        }
        Tensor src = x;
        if (!x.is_contiguous()) src = keep = x.contiguous();
        ushort* p = (ushort*)TensorPointers.Data(src);
        if (x.dtype == ScalarType.BFloat16) for (long i = 0; i < k; i++) _xBuf[i] = HalfBits.Bf16ToF32(p[i]);
        else for (long i = 0; i < k; i++) _xBuf[i] = HalfBits.F16ToF32(p[i]);
        return _xBuf;
    }

    static Tensor Gemv(Tensor x, Tensor w, Tensor? scales, WeightFormat format)
    {
        long n = w.shape[0], k = w.shape[1];
        var shape = x.shape.ToArray();
        shape[^1] = n;
        var y = torch.empty(shape, dtype: x.dtype, device: x.device);
        float* xp = InputAsF32(x, k, out var keep);
        try
        {
            var yFormat = x.dtype switch { ScalarType.BFloat16 => OutFormat.BF16, ScalarType.Float16 => OutFormat.F16, _ => OutFormat.F32 };
            Gemv(xp, (int)k, TensorPointers.Data(w), w.stride(0), (int)n, w.element_size(),
                scales is null ? null : (ushort*)TensorPointers.Data(scales), scales?.stride(0) ?? 0, format, TensorPointers.Data(y), yFormat);
        }
        finally { keep?.Dispose(); }
        return y;
    }

    /// <summary>The format of a weight the decode kernels read, or null when they do not apply to it.</summary>
    internal static WeightFormat? KernelFormat(Tensor w, Tensor? scales) => w.dtype switch
    {
        ScalarType.Int8 when scales is not null => WeightFormat.Q8,
        ScalarType.BFloat16 when HalfKernels => WeightFormat.BF16,
        ScalarType.Float16 when HalfKernels => WeightFormat.F16,
        ScalarType.Float32 when F32Kernels => WeightFormat.F32,
        _ => null,
    };

    /// <summary>
    /// One row through a decode kernel on raw memory: <c>y[r] = Σ_c W[r, c] · x[c]</c> for r in [0, n), x f32 of
    /// <paramref name="k"/> elements, W row-major with <paramref name="ldw"/> elements between rows (q8: with its scales),
    /// y stored as <paramref name="yFormat"/>. The rows are split over the pool when the weight is large enough.
    /// </summary>
    internal static void Gemv(float* x, int k, void* w, long ldw, int n, long elementSize, ushort* scales, long lds,
        WeightFormat format, void* y, OutFormat yFormat)
    {
        sbyte* xq = null;
        float* xs = null;
        if (format == WeightFormat.Q8 && QuantizeQ8Activations) QuantizeInput(x, k, out xq, out xs);
        float* xi = format is WeightFormat.BF16 or WeightFormat.F16 && _isa != KernelIsa.Portable ? InterleavedInput(x, k, _isa) : null;
        var job = new GemvJob
        {
            Format = format, W = w, LdW = ldw, Scales = scales, LdS = lds,
            K = k, Rows = n, X = x, XP = xi, XQ = xq, XS = xs, Y = y, Isa = _isa, YFormat = yFormat,
        };
        long bytes = (long)n * k * elementSize;
        int threads = bytes < MinParallelBytes ? 1 : RowPool.Shared.Threads;
        // About 16 chunks per thread: the threads take chunks as they finish, so the last one ends at most a chunk
        // (1/16 of its share) after the others, also when the machine deschedules one of them for a while.
        int grain = (int)Math.Max(16, (n / (threads * 16L) + 3) / 4 * 4);
        RowPool.Shared.Run(&GemvPart, &job, n, grain, threads);
    }

    static void GemvPart(void* state, int r0, int r1) => GemvKernels.Rows(*(GemvJob*)state, r0, r1);

    unsafe struct FewRowsState
    {
        public GemvJob Job;
        public float* X, Y;
        public int Rows;
    }

    static void FewRowsPart(void* state, int r0, int r1)
    {
        var st = (FewRowsState*)state;
        var job = st->Job;
        for (int i = 0; i < st->Rows; i++)
        {
            job.X = st->X + (long)i * job.K;
            job.Y = st->Y + (long)i * job.Rows;
            GemvKernels.Rows(job, r0, r1);
        }
    }

    /// <summary>
    /// A few rows of q8 product: each tile of weight rows (about 256 KiB) is multiplied with every input row in turn
    /// while it is in cache, by the single-row kernel with f32 input; tiles are split over the pool.
    /// </summary>
    static Tensor Q8FewRows(Tensor x, Tensor q, Tensor scales)
    {
        long n = q.shape[0], k = q.shape[1];
        using var scope = NewDisposeScope();
        var x2 = x.reshape(-1, k);
        if (x2.dtype != ScalarType.Float32) x2 = x2.to_type(ScalarType.Float32);
        x2 = x2.contiguous();
        long m = x2.shape[0];
        var y2 = torch.empty(new[] { m, n }, dtype: ScalarType.Float32);
        var st = new FewRowsState
        {
            Job = new GemvJob
            {
                Format = WeightFormat.Q8, W = TensorPointers.Data(q), LdW = q.stride(0),
                Scales = (ushort*)TensorPointers.Data(scales), LdS = scales.stride(0),
                K = (int)k, Rows = (int)n, Isa = _isa, YFormat = OutFormat.F32,
            },
            X = (float*)TensorPointers.Data(x2), Y = (float*)TensorPointers.Data(y2), Rows = (int)m,
        };
        int threads = n * k < MinParallelBytes ? 1 : RowPool.Shared.Threads;
        int grain = (int)Math.Max(16, Math.Min((256L << 10) / Math.Max(1, k), n / (threads * 4L)) + 3) / 4 * 4;
        RowPool.Shared.Run(&FewRowsPart, &st, (int)n, grain, threads);
        var shape = x.shape.ToArray();
        shape[^1] = n;
        var y = y2.view(shape);
        if (x.dtype != ScalarType.Float32) y = y.to_type(x.dtype);
        return y.MoveToOuterDisposeScope();
    }

    unsafe struct DequantState
    {
        public sbyte* Q;
        public long LdQ;
        public ushort* S;
        public long LdS;
        public int K;
        public float* Dst;
    }

    static void DequantPart(void* state, int r0, int r1)
    {
        var st = (DequantState*)state;
        Q8.DequantizeRows(st->Q + r0 * st->LdQ, st->LdQ, st->S + r0 * st->LdS, st->LdS, st->K, 0, r1 - r0, st->Dst + (long)r0 * st->K);
    }

    /// <summary>Several rows: dequantize row tiles of the weight to f32 and multiply each with libtorch's GEMM.</summary>
    static Tensor Q8Prefill(Tensor x, Tensor q, Tensor scales)
    {
        long n = q.shape[0], k = q.shape[1];
        using var scope = NewDisposeScope();
        var x2 = x.reshape(-1, k);
        if (x2.dtype != ScalarType.Float32) x2 = x2.to_type(ScalarType.Float32);
        long m = x2.shape[0];
        var y2 = torch.empty(new[] { m, n }, dtype: ScalarType.Float32);
        long tileRows = Math.Clamp(PrefillTileBytes / (4 * Math.Max(1, k)), 16, Math.Max(16, n));
        tileRows = (tileRows + 3) / 4 * 4;
        var tile = torch.empty(new[] { Math.Min(tileRows, n), k }, dtype: ScalarType.Float32);
        var st = new DequantState
        {
            LdQ = q.stride(0), LdS = scales.stride(0), K = (int)k, Dst = (float*)TensorPointers.Data(tile),
        };
        sbyte* q0 = (sbyte*)TensorPointers.Data(q);
        ushort* s0 = (ushort*)TensorPointers.Data(scales);
        for (long r = 0; r < n; r += tileRows)
        {
            long len = Math.Min(tileRows, n - r);
            st.Q = q0 + r * st.LdQ;
            st.S = s0 + r * st.LdS;
            // On the calling thread: alternating this pool with libtorch's GEMM threads oversubscribes the cores.
            DequantPart(&st, 0, (int)len);
            using var tv = tile.narrow(0, 0, len);
            using var tt = tv.t();
            using var part = torch.mm(x2, tt);
            using var dst = y2.narrow(1, r, len);
            dst.copy_(part);
        }
        var shape = x.shape.ToArray();
        shape[^1] = n;
        var y = y2.view(shape);
        if (x.dtype != ScalarType.Float32) y = y.to_type(x.dtype);
        return y.MoveToOuterDisposeScope();
    }
}

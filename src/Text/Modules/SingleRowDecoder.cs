using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>
/// The decode step of one sequence (one new token, KV cache on the CPU) run layer by layer in C# on the tensors' memory:
/// RMSNorm, the fused q/k/v product, rotary embedding, the cache write, grouped-query attention over the cache, o_proj,
/// the residual, RMSNorm, the fused gate/up product with SiLU·up, down_proj and the residual, then the final norm. The
/// products run through the decode kernels (<see cref="WeightKernels"/>); nothing else calls into libtorch and nothing is
/// allocated per token but the returned hidden state. Values are rounded to the model's dtype wherever the libtorch path
/// materialises a tensor (bf16 models round each norm, product, rotation, attention output and residual to bf16), so both
/// paths give the same tokens; sums run in another order, so the last bits may differ. Blocks it does not cover
/// (cross-attention) run their own forward in between.
/// </summary>
internal static unsafe class SingleRowDecoder
{
    /// <summary>Decode steps run by this path so far (process-wide; the tests check the path ran).</summary>
    public static long Steps;

    /// <summary>Attention work (heads × cached positions × head_dim) from which the kv heads are split over the pool.</summary>
    public static long ParallelAttentionWork = 1 << 18;

    /// <summary>
    /// The final-normed hidden state [1, 1, D] of one decode step, or null when the step does not fit this path (then the
    /// caller runs the libtorch path). Appends to the cache but does not advance it.
    /// </summary>
    public static Tensor? TryForward(LlamaForCausalLM m, Tensor embeddings, ForwardOptions options)
    {
        var cache = options.Cache;
        if (!WeightKernels.FusedDecode || cache is null || torch.is_grad_enabled()) return null;
        if (embeddings.dim() != 3 || embeddings.shape[0] != 1 || embeddings.shape[1] != 1 || cache.Batch != 1) return null;
        if (options.KeyValid is not null || options.DocumentIds is not null || m.Device.type != DeviceType.CPU) return null;
        var a = m.DType;
        if (a is not (ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16) || cache.DType != a) return null;
        if (cache.Length + 1 > cache.Capacity) return null;   // the libtorch path reports the full cache
        var stack = m.model;
        if (!Usable(stack.norm, a)) return null;
        var blocks = stack.DecodeOrder().ToList();
        // Which blocks this path runs, checked once per step (each check reads several tensor properties).
        Span<bool> covered = blocks.Count <= 256 ? stackalloc bool[blocks.Count] : new bool[blocks.Count];
        bool any = false;
        for (int i = 0; i < blocks.Count; i++)
        {
            if (blocks[i].PlacedOn is { } dev && dev.type != DeviceType.CPU) return null;
            any |= covered[i] = Covered(blocks[i], a);
        }
        if (!any) return null;

        int position = cache.Length;
        if (options.Positions is { } pos)
        {
            if (pos.numel() != 1) return null;
            position = (int)pos.reshape(1)[0].item<long>();
        }
        var c = m.Config;
        int d = c.HiddenSize;
        var s = Scratch.For(c);
        float* x = s.X;
        Load(embeddings, x, d);
        Round(x, d, a);
        DecoderContext? ctx = null;
        for (int i = 0; i < blocks.Count; i++)
        {
            var block = blocks[i];
            if (covered[i])
            {
                Layer((LlamaDecoderLayer)block, m.Rotary, cache, position, s, a);
                continue;
            }
            // A block of another kind (cross-attention) runs its own forward on the current state.
            ctx ??= Context(m, options, position);
            using var scope = NewDisposeScope();
            var xt = torch.empty(new long[] { 1, 1, d }, dtype: a);
            Store(x, TensorPointers.Data(xt), a, d);
            var yt = block.Forward(xt, ctx);
            Load(yt, x, d);
        }
        var h = torch.empty(new long[] { 1, 1, d }, dtype: a);
        Norm(x, stack.norm, c.RmsNormEps, s.Xn, d, a);
        Store(s.Xn, TensorPointers.Data(h), a, d);
        Interlocked.Increment(ref Steps);
        return h;
    }

    static DecoderContext Context(LlamaForCausalLM m, ForwardOptions options, int position)
    {
        // Disposed with the caller's scope, like the tables of the libtorch path.
        var positions = options.Positions ?? torch.tensor(new long[] { position }, new long[] { 1, 1 });
        var (cos, sin) = m.Rotary.Tables(positions.view(1, 1), position);
        return new DecoderContext { Cos = cos, Sin = sin, Mask = null, Cache = options.Cache, Media = options.Media };
    }

    static bool Usable(RmsNorm n, ScalarType a) =>
        n.weight.dtype == a && n.weight.device_type == DeviceType.CPU && n.weight.is_contiguous();

    static bool Kernel(Tensor w, Tensor? scales) =>
        w.device_type == DeviceType.CPU && w.dim() == 2 && w.stride(1) == 1 && w.shape[0] <= int.MaxValue && w.shape[1] <= int.MaxValue
        && WeightKernels.KernelFormat(w, scales) is not null && (scales is null || scales.device_type == DeviceType.CPU && scales.stride(1) == 1);

    /// <summary>True for a self-attention layer this path runs: fused projections on kernel weights, norms in the model's dtype.</summary>
    static bool Covered(DecoderBlock b, ScalarType a) =>
        b is LlamaDecoderLayer l && l.self_attn.FusedUsable && l.mlp.FusedUsable
        && Usable(l.input_layernorm, a) && Usable(l.post_attention_layernorm, a)
        && Kernel(l.self_attn.FusedQkv, l.self_attn.FusedQkvScale) && Kernel(l.self_attn.o_proj.weight!, l.self_attn.OutScale)
        && l.self_attn.o_proj.bias is null
        && Kernel(l.mlp.FusedGateUp, l.mlp.FusedGateUpScale) && Kernel(l.mlp.down_proj.weight!, l.mlp.DownScale)
        && l.mlp.down_proj.bias is null;

    static void Product(float* x, int k, Tensor w, Tensor? scales, float* y, ScalarType a)
    {
        var format = WeightKernels.KernelFormat(w, scales)!.Value;
        int n = (int)w.shape[0];
        WeightKernels.Gemv(x, k, TensorPointers.Data(w), w.stride(0), n, w.element_size(),
            scales is null ? null : (ushort*)TensorPointers.Data(scales), scales?.stride(0) ?? 0, format, y, OutFormat.F32);
        Round(y, n, a);
    }

    static void Layer(LlamaDecoderLayer l, RotaryEmbedding rotary, KvCache cache, int position, Scratch s, ScalarType a)
    {
        var at = l.self_attn;
        var mlp = l.mlp;
        int d = (int)l.input_layernorm.weight.shape[0];
        int heads = at.Heads, kvHeads = at.KvHeads, hd = at.HeadDim, nq = heads * hd, nkv = kvHeads * hd;
        double eps = l.input_layernorm.Eps;
        float* x = s.X, xn = s.Xn, qkv = s.Qkv, att = s.Att;

        // Attention half: x += o_proj(attend(rope(q), cache ∪ rope(k), cache ∪ v)).
        Norm(x, l.input_layernorm, eps, xn, d, a);
        Product(xn, d, at.FusedQkv, at.FusedQkvScale, qkv, a);
        rotary.Row(position, out float* cos, out float* sin);
        for (int h = 0; h < heads; h++) Rope(qkv + h * hd, hd, cos, sin, a);
        for (int h = 0; h < kvHeads; h++) Rope(qkv + nq + h * hd, hd, cos, sin, a);
        var (kc, vc) = cache.Storage(l.LayerIndex, CPU);
        int len = cache.Length, cap = cache.Capacity;
        byte* kBase = (byte*)TensorPointers.Data(kc), vBase = (byte*)TensorPointers.Data(vc);
        long es = kc.element_size();
        for (int g = 0; g < kvHeads; g++)
        {
            long row = ((long)g * cap + len) * hd * es;
            Store(qkv + nq + g * hd, kBase + row, a, hd);
            Store(qkv + nq + nkv + g * hd, vBase + row, a, hd);
        }
        var job = new AttendJob
        {
            Q = qkv, K = kBase, V = vBase, Out = att, Rep = heads / kvHeads, HeadDim = hd, Length = len + 1, Capacity = cap,
            Scale = 1f / MathF.Sqrt(hd), DType = a,
        };
        // Split over the kv heads only when the cache is long enough to pay for the hand-off.
        long work = (long)heads * (len + 1) * hd;
        RowPool.Shared.Run(&AttendPart, &job, kvHeads, 1, work >= ParallelAttentionWork ? int.MaxValue : 1);
        Product(att, nq, at.o_proj.weight!, at.OutScale, xn, a);
        AddInto(x, xn, d, a);

        // MLP half: x += down(silu(gate) · up).
        Norm(x, l.post_attention_layernorm, l.post_attention_layernorm.Eps, xn, d, a);
        int inter = (int)mlp.Hidden;
        float* gu = s.GateUp;
        Product(xn, d, mlp.FusedGateUp, mlp.FusedGateUpScale, gu, a);
        SwiGlu(gu, gu + inter, gu, inter, a);
        Product(gu, inter, mlp.down_proj.weight!, mlp.DownScale, xn, a);
        AddInto(x, xn, d, a);
    }

    // ---------------- element-wise steps ----------------

    /// <summary>RMSNorm as <see cref="RmsNorm.forward"/> computes it: <c>w · dtype(x · rsqrt(mean(x²) + eps))</c>.</summary>
    static void Norm(float* x, RmsNorm norm, double eps, float* dst, int n, ScalarType a)
    {
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
        float r = 1f / MathF.Sqrt((float)(ss / n) + (float)eps);
        void* w = TensorPointers.Data(norm.weight);
        switch (a)
        {
            case ScalarType.Float32:
                for (int i = 0; i < n; i++) dst[i] = ((float*)w)[i] * (x[i] * r);
                break;
            case ScalarType.BFloat16:
                for (int i = 0; i < n; i++)
                    dst[i] = RoundBf16(HalfBits.Bf16ToF32(((ushort*)w)[i]) * RoundBf16(x[i] * r));
                break;
            default:
                for (int i = 0; i < n; i++)
                    dst[i] = RoundF16(HalfBits.F16ToF32(((ushort*)w)[i]) * RoundF16(x[i] * r));
                break;
        }
    }

    /// <summary>Rotary embedding of one head in place (HF rotate_half, in f32, rounded to the dtype).</summary>
    static void Rope(float* v, int hd, float* cos, float* sin, ScalarType a)
    {
        int half = hd / 2;
        for (int i = 0; i < half; i++)
        {
            float x1 = v[i], x2 = v[i + half], c = cos[i], s = sin[i];
            float m1 = x1 * c, m2 = -x2 * s, m3 = x2 * c, m4 = x1 * s;
            v[i] = m1 + m2;
            v[i + half] = m3 + m4;
        }
        Round(v, hd, a);
    }

    /// <summary><c>x = dtype(x + y)</c>.</summary>
    static void AddInto(float* x, float* y, int n, ScalarType a)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
            for (int vf = Vector<float>.Count; i + vf <= n; i += vf)
                Unsafe.WriteUnaligned(x + i, Unsafe.ReadUnaligned<Vector<float>>(x + i) + Unsafe.ReadUnaligned<Vector<float>>(y + i));
        for (; i < n; i++) x[i] += y[i];
        Round(x, n, a);
    }

    /// <summary><c>dst = dtype(dtype(silu(g)) · u)</c>, silu(g) = g / (1 + e^-g).</summary>
    static void SwiGlu(float* g, float* u, float* dst, int n, ScalarType a)
    {
        switch (a)
        {
            case ScalarType.Float32:
                for (int i = 0; i < n; i++) { float v = g[i]; dst[i] = v / (1f + MathF.Exp(-v)) * u[i]; }
                break;
            case ScalarType.BFloat16:
                for (int i = 0; i < n; i++) { float v = g[i]; dst[i] = RoundBf16(RoundBf16(v / (1f + MathF.Exp(-v))) * u[i]); }
                break;
            default:
                for (int i = 0; i < n; i++) { float v = g[i]; dst[i] = RoundF16(RoundF16(v / (1f + MathF.Exp(-v))) * u[i]); }
                break;
        }
    }

    // ---------------- attention over the cache ----------------

    struct AttendJob
    {
        public float* Q, Out;
        public byte* K, V;
        public int Rep, HeadDim, Length, Capacity;
        public float Scale;
        public ScalarType DType;
    }

    static void AttendPart(void* state, int g0, int g1)
    {
        var j = (AttendJob*)state;
        for (int g = g0; g < g1; g++) AttendGroup(*j, g);
    }

    /// <summary>Softmax attention of the <c>Rep</c> query heads that share kv head <paramref name="g"/> over the cached positions.</summary>
    static void AttendGroup(in AttendJob j, int g)
    {
        int hd = j.HeadDim, len = j.Length;
        var buf = AttendScratch.For(len, hd);
        float* k, v;
        if (j.DType == ScalarType.Float32)
        {
            k = (float*)j.K + (long)g * j.Capacity * hd;
            v = (float*)j.V + (long)g * j.Capacity * hd;
        }
        else
        {
            // 16-bit cache: widen this head's keys and values once for its Rep query heads.
            k = buf.K; v = buf.V;
            ushort* ks = (ushort*)j.K + (long)g * j.Capacity * hd, vs = (ushort*)j.V + (long)g * j.Capacity * hd;
            Widen(ks, k, len * hd, j.DType);
            Widen(vs, v, len * hd, j.DType);
        }
        float* p = buf.Scores;
        for (int r = 0; r < j.Rep; r++)
        {
            int h = g * j.Rep + r;
            float* q = j.Q + h * hd, o = j.Out + h * hd;
            float max = float.NegativeInfinity;
            for (int t = 0; t < len; t++)
            {
                float sc = Dot(q, k + (long)t * hd, hd) * j.Scale;
                p[t] = sc;
                if (sc > max) max = sc;
            }
            float sum = 0;
            for (int t = 0; t < len; t++) { float e = MathF.Exp(p[t] - max); p[t] = e; sum += e; }
            float inv = 1f / sum;
            new Span<float>(o, hd).Clear();
            for (int t = 0; t < len; t++) Axpy(p[t] * inv, v + (long)t * hd, o, hd);
            Round(o, hd, j.DType);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Dot(float* a, float* b, int n)
    {
        int i = 0;
        float s = 0;
        if (Vector.IsHardwareAccelerated && n >= Vector<float>.Count)
        {
            var acc = Vector<float>.Zero;
            for (int vf = Vector<float>.Count; i + vf <= n; i += vf)
                acc += Unsafe.ReadUnaligned<Vector<float>>(a + i) * Unsafe.ReadUnaligned<Vector<float>>(b + i);
            s = Vector.Sum(acc);
        }
        for (; i < n; i++) s += a[i] * b[i];
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Axpy(float alpha, float* x, float* y, int n)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var av = new Vector<float>(alpha);
            for (int vf = Vector<float>.Count; i + vf <= n; i += vf)
                Unsafe.WriteUnaligned(y + i, Unsafe.ReadUnaligned<Vector<float>>(y + i) + av * Unsafe.ReadUnaligned<Vector<float>>(x + i));
        }
        for (; i < n; i++) y[i] += alpha * x[i];
    }

    // ---------------- dtype conversions ----------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float RoundBf16(float v) => HalfBits.Bf16ToF32(HalfBits.F32ToBf16(v));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float RoundF16(float v) => HalfBits.F16ToF32(HalfBits.F32ToF16(v));

    /// <summary>Rounds f32 values to the nearest value of <paramref name="a"/> (nothing for f32).</summary>
    static void Round(float* p, int n, ScalarType a)
    {
        if (a == ScalarType.BFloat16) for (int i = 0; i < n; i++) p[i] = RoundBf16(p[i]);
        else if (a == ScalarType.Float16) for (int i = 0; i < n; i++) p[i] = RoundF16(p[i]);
    }

    static void Widen(ushort* src, float* dst, int n, ScalarType a)
    {
        if (a == ScalarType.BFloat16) for (int i = 0; i < n; i++) dst[i] = HalfBits.Bf16ToF32(src[i]);
        else for (int i = 0; i < n; i++) dst[i] = HalfBits.F16ToF32(src[i]);
    }

    /// <summary>Writes f32 values as <paramref name="a"/> (already representable: the bits are cut, not rounded again).</summary>
    static void Store(float* src, void* dst, ScalarType a, int n)
    {
        switch (a)
        {
            case ScalarType.Float32: Buffer.MemoryCopy(src, dst, n * 4L, n * 4L); break;
            case ScalarType.BFloat16: for (int i = 0; i < n; i++) ((ushort*)dst)[i] = HalfBits.F32ToBf16(src[i]); break;
            default: for (int i = 0; i < n; i++) ((ushort*)dst)[i] = HalfBits.F32ToF16(src[i]); break;
        }
    }

    /// <summary>A [1, 1, n] tensor of any float dtype into f32.</summary>
    static void Load(Tensor t, float* dst, int n)
    {
        using var c = t.is_contiguous() ? null : t.contiguous();
        var src = c ?? t;
        void* p = TensorPointers.Data(src);
        switch (src.dtype)
        {
            case ScalarType.Float32: Buffer.MemoryCopy(p, dst, n * 4L, n * 4L); break;
            case ScalarType.BFloat16: for (int i = 0; i < n; i++) dst[i] = HalfBits.Bf16ToF32(((ushort*)p)[i]); break;
            case ScalarType.Float16: for (int i = 0; i < n; i++) dst[i] = HalfBits.F16ToF32(((ushort*)p)[i]); break;
            default:
                using (var f = src.to_type(ScalarType.Float32))
                    Buffer.MemoryCopy(TensorPointers.Data(f), dst, n * 4L, n * 4L);
                break;
        }
    }

    // ---------------- per-thread buffers (grown, never shrunk) ----------------

    sealed class Scratch
    {
        [ThreadStatic] static Scratch? _current;
        float* _mem;
        long _cap;
        public float* X, Xn, Qkv, Att, GateUp;

        public static Scratch For(LlamaConfig c)
        {
            var s = _current ??= new Scratch();
            long d = c.HiddenSize, hd = c.HeadDim;
            long qkv = (c.NumHeads + 2L * c.NumKvHeads) * hd, att = c.NumHeads * hd, gu = 2L * c.IntermediateSize;
            long need = Pad(d) * 2 + Pad(qkv) + Pad(att) + Pad(gu);
            if (s._cap < need)
            {
                if (s._mem != null) NativeMemory.AlignedFree(s._mem);
                s._mem = (float*)NativeMemory.AlignedAlloc((nuint)(need * sizeof(float)), 64);
                s._cap = need;
            }
            float* p = s._mem;
            s.X = p; p += Pad(d);
            s.Xn = p; p += Pad(d);
            s.Qkv = p; p += Pad(qkv);
            s.Att = p; p += Pad(att);
            s.GateUp = p;
            return s;
        }

        static long Pad(long n) => (n + 15) / 16 * 16;
    }

    sealed class AttendScratch
    {
        [ThreadStatic] static AttendScratch? _current;
        float* _mem;
        long _cap;
        public float* K, V, Scores;

        public static AttendScratch For(int len, int hd)
        {
            var s = _current ??= new AttendScratch();
            long kv = ((long)len * hd + 15) / 16 * 16, need = 2 * kv + len + 16;
            if (s._cap < need)
            {
                if (s._mem != null) NativeMemory.AlignedFree(s._mem);
                long cap = Math.Max(need, 2 * s._cap);
                s._mem = (float*)NativeMemory.AlignedAlloc((nuint)(cap * sizeof(float)), 64);
                s._cap = cap;
            }
            s.K = s._mem;
            s.V = s._mem + kv;
            s.Scores = s._mem + 2 * kv;
            return s;
        }
    }
}

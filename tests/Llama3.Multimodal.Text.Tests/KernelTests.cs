using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text.Tests;

/// <summary>
/// The kernel tests switch process-wide settings (instruction set, f32 kernels, q8 input quantization), which change the
/// last bits of every decode in the process, so their collection runs alone.
/// </summary>
[CollectionDefinition("kernels", DisableParallelization = true)]
public sealed class KernelsCollection { }

/// <summary>The decode/prefill kernels against plain references, on every instruction set this CPU runs.</summary>
[Collection("kernels")]
public class KernelTests
{
    // Row lengths below, at and above one block, not multiples of 32, and past 128 blocks (the scale chunk of the q8 kernels).
    static readonly (long N, long K)[] Shapes =
    {
        (1, 1), (3, 31), (5, 32), (7, 33), (4, 64), (13, 95), (64, 100), (129, 257), (6, 1000), (37, 2065), (5, 4167),
    };

    static ushort[] Bits(Tensor t) => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(t.contiguous().bytes).ToArray();

    static IEnumerable<KernelIsa> Isas() =>
        new[] { KernelIsa.Portable, KernelIsa.Avx2, KernelIsa.Avx512 }.Where(i => i <= WeightKernels.BestIsa);

    static void WithIsa(KernelIsa isa, Action body, bool quantizeActivations = true)
    {
        var (saved, savedMin, savedQa) = (WeightKernels.Isa, WeightKernels.MinParallelBytes, WeightKernels.QuantizeQ8Activations);
        try
        {
            WeightKernels.Isa = isa;
            WeightKernels.MinParallelBytes = 0;     // split even tiny weights over the pool
            WeightKernels.QuantizeQ8Activations = quantizeActivations;
            body();
        }
        finally { WeightKernels.Isa = saved; WeightKernels.MinParallelBytes = savedMin; WeightKernels.QuantizeQ8Activations = savedQa; }
    }

    /// <summary>Σ|w||x| per output: the scale of the rounding error any f32 summation order can make.</summary>
    static Tensor Magnitude(Tensor x, Tensor w) =>
        nn.functional.linear(x.to_type(ScalarType.Float64).abs(), w.to_type(ScalarType.Float64).abs());

    static void AssertClose(Tensor got, Tensor want, Tensor magnitude, double rel, string what)
    {
        var err = (got.to_type(ScalarType.Float64) - want.to_type(ScalarType.Float64)).abs();
        var bound = magnitude * rel + 1e-30;
        var worst = (err / bound).max().item<double>();
        Assert.True(worst <= 1.0, $"{what}: error {worst:G3}× the bound (max abs error {err.max().item<double>():G3}).");
    }

    [Fact]
    public void HalfGemvMatchesReference()
    {
        using var noGrad = no_grad();
        var g = new Generator(5, CPU);
        foreach (var isa in Isas())
            WithIsa(isa, () =>
            {
                foreach (var (n, k) in Shapes)
                    foreach (var wt in new[] { ScalarType.BFloat16, ScalarType.Float16 })
                        foreach (var xt in new[] { ScalarType.Float32, ScalarType.BFloat16, ScalarType.Float16 })
                        {
                            using var scope = NewDisposeScope();
                            var w = randn(new[] { n, k }, generator: g).to_type(wt);
                            var x = randn(new[] { 1, 1, k }, generator: g).to_type(xt);
                            var y = WeightKernels.Linear(x, w);
                            Assert.Equal(new[] { 1L, 1, n }, y.shape);
                            Assert.Equal(xt, y.dtype);
                            // Reference: the same weights and input widened to f64, one rounding to the output dtype.
                            var want = nn.functional.linear(x.to_type(ScalarType.Float64), w.to_type(ScalarType.Float64));
                            double rel = xt == ScalarType.Float32 ? 1e-5 : xt == ScalarType.BFloat16 ? 8e-3 : 1e-3;
                            AssertClose(y, want, Magnitude(x, w), rel, $"{isa} {wt} x {xt} [{n}, {k}]");
                            if (xt == ScalarType.Float32)
                            {
                                // Results do not depend on the thread split: one thread gives the same bits.
                                WeightKernels.MinParallelBytes = long.MaxValue;
                                var one = WeightKernels.Linear(x, w);
                                WeightKernels.MinParallelBytes = 0;
                                Assert.True(one.equal(y).all().item<bool>(), $"{isa} {wt} [{n}, {k}]: threaded result differs from one thread");
                            }
                        }
            });
    }

    [Fact]
    public void F32GemvMatchesReference()
    {
        using var noGrad = no_grad();
        var g = new Generator(11, CPU);
        foreach (var isa in Isas())
            WithIsa(isa, () =>
            {
                foreach (var (n, k) in Shapes.Append((9, 48)).Append((6, 80)))
                    foreach (var xt in new[] { ScalarType.Float32, ScalarType.BFloat16 })
                    {
                        using var scope = NewDisposeScope();
                        var w = randn(new[] { n, k }, generator: g);
                        var x = randn(new[] { 1, 1, k }, generator: g).to_type(xt);
                        var y = WeightKernels.Linear(x, w);
                        Assert.Equal(new[] { 1L, 1, n }, y.shape);
                        Assert.Equal(xt, y.dtype);
                        var want = nn.functional.linear(x.to_type(ScalarType.Float64), w.to_type(ScalarType.Float64));
                        AssertClose(y, want, Magnitude(x, w), xt == ScalarType.Float32 ? 1e-5 : 8e-3, $"{isa} f32 x {xt} [{n}, {k}]");
                        if (xt != ScalarType.Float32) continue;
                        // Within f32 rounding of libtorch's own single-row product.
                        WeightKernels.F32Kernels = false;
                        var torchY = WeightKernels.Linear(x, w);
                        WeightKernels.F32Kernels = true;
                        AssertClose(y, torchY, Magnitude(x, w), 2e-5, $"{isa} f32 vs libtorch [{n}, {k}]");
                        // Results do not depend on the thread split.
                        WeightKernels.MinParallelBytes = long.MaxValue;
                        var one = WeightKernels.Linear(x, w);
                        WeightKernels.MinParallelBytes = 0;
                        Assert.True(one.equal(y).all().item<bool>(), $"{isa} f32 [{n}, {k}]: threaded result differs from one thread");
                    }
            });
    }

    [Fact]
    public void F32GemvKeepsLibtorchForGradientsAndManyRows()
    {
        var g = new Generator(12, CPU);
        var w = randn(new long[] { 19, 37 }, generator: g);
        var x = randn(new long[] { 1, 37 }, generator: g);
        using (no_grad())
        {
            // Several rows: libtorch's GEMM, bit for bit.
            var xs = randn(new long[] { 3, 37 }, generator: g);
            Assert.True(WeightKernels.Linear(xs, w).equal(nn.functional.linear(xs, w)).all().item<bool>());
        }
        // Gradients enabled: libtorch, and the gradient flows.
        var wg = w.clone().requires_grad_(true);
        var y = WeightKernels.Linear(x, wg);
        Assert.True(y.requires_grad);
        y.sum().backward();
        Assert.NotNull(wg.grad);
    }

    /// <summary>
    /// Greedy KV-cached decode of <paramref name="m"/> after a 5-token prompt (<paramref name="prompt"/>, or a default one):
    /// the tokens and each step's logits; follows <paramref name="follow"/> when given.
    /// </summary>
    internal static (List<long> Tokens, List<Tensor> Logits) Decode(LlamaForCausalLM m, int steps, List<long>? follow = null, long[]? prompt = null)
    {
        using var noGrad = no_grad();
        using var cache = m.NewCache(1, steps + 8);
        var tokens = new List<long>();
        var logits = new List<Tensor>();
        var input = tensor(prompt ?? new long[] { 1, 17, 4242, 99, 31000 }, new long[] { 1, 5 });
        for (int i = 0; i < steps; i++)
        {
            var l = m.Forward(input, new ForwardOptions { Cache = cache, LastOnly = true })[0, 0].detach();
            logits.Add(l);
            long next = follow?[i] ?? l.argmax().item<long>();
            tokens.Add(next);
            input = tensor(new[] { next }, new long[] { 1, 1 });
        }
        return (tokens, logits);
    }

    [Fact]
    public void DecodeThroughTheKernelsMatchesTheLibtorchPath()
    {
        var saved = (WeightKernels.F32Kernels, WeightKernels.QuantizeQ8Activations);
        try
        {
            // f32: the kernel changes only the summation order of single-row products.
            using (var m = LlamaForCausalLM.Create(TextPresets.Get("tiny")).InitializeWeights(3, 0.2))
            {
                WeightKernels.F32Kernels = false;
                var (t0, l0) = Decode(m, 10);
                WeightKernels.F32Kernels = true;
                var (t1, l1) = Decode(m, 10);
                Assert.Equal(t0, t1);
                for (int i = 0; i < l0.Count; i++)
                {
                    double scale = l0[i].abs().max().item<float>();
                    double err = (l1[i] - l0[i]).abs().max().item<float>();
                    Assert.True(err <= 1e-4 * scale, $"step {i}: max |Δlogit| {err:G3} against max |logit| {scale:G3}");
                }
            }
            // q8: quantizing the input rows moves the logits by the input rounding only (random logits have near-ties
            // among 128 256 entries, so the greedy tokens may differ; the logits are compared along one token path).
            using (QuantizationSettings.Use(new QuantizationSettings(WeightQuantization.Q8)))
            using (var m = LlamaForCausalLM.Create(TextPresets.Get("tiny")).InitializeWeights(3, 0.2))
            {
                WeightKernels.QuantizeQ8Activations = false;
                var (t0, l0) = Decode(m, 10);
                WeightKernels.QuantizeQ8Activations = true;
                var (_, l1) = Decode(m, 10, t0);
                for (int i = 0; i < l0.Count; i++)
                {
                    double std = l0[i].std().item<float>();
                    double err = (l1[i] - l0[i]).abs().mean().item<float>();
                    Assert.True(err <= 0.02 * std, $"q8 step {i}: mean |Δlogit| {err:G3} against the logit std {std:G3}");
                }
            }
        }
        finally { (WeightKernels.F32Kernels, WeightKernels.QuantizeQ8Activations) = saved; }
    }

    [Fact]
    public void HalfGemvReadsRowRangesOfALargerTensorInPlace()
    {
        using var noGrad = no_grad();
        var g = new Generator(6, CPU);
        var fused = randn(new long[] { 90, 70 }, generator: g).to_type(ScalarType.BFloat16);
        var w = fused.narrow(0, 17, 41);
        var x = randn(new long[] { 1, 70 }, generator: g);
        var want = nn.functional.linear(x.to_type(ScalarType.Float64), w.to_type(ScalarType.Float64));
        AssertClose(WeightKernels.Linear(x, w), want, Magnitude(x, w), 1e-5, "narrowed bf16");
    }

    /// <summary>The documented Q8_0 rule written out plainly, one block at a time (finite weights).</summary>
    internal static (sbyte[] Q, ushort[] S) ReferenceQuantize(float[] w, int rows, int k)
    {
        int nb = (k + 31) / 32;
        var q = new sbyte[rows * k];
        var s = new ushort[rows * nb];
        for (int r = 0; r < rows; r++)
            for (int b = 0; b < nb; b++)
            {
                int c0 = b * 32, c1 = Math.Min(k, c0 + 32);
                float amax = 0;
                for (int c = c0; c < c1; c++) amax = Math.Max(amax, Math.Abs(w[r * k + c]));
                float d = amax / 127f, id = d == 0 ? 0 : 1f / d;
                s[r * nb + b] = BitConverter.HalfToUInt16Bits((Half)d);
                for (int c = c0; c < c1; c++) q[r * k + c] = (sbyte)Math.Clamp(MathF.Round(w[r * k + c] * id, MidpointRounding.AwayFromZero), -127f, 127f);
            }
        return (q, s);
    }

    [Fact]
    public void Q8QuantizeFollowsTheBlockRule()
    {
        var g = new Generator(7, CPU);
        foreach (var (n, k) in Shapes)
        {
            var w = randn(new[] { n, k }, generator: g) * 0.05;
            if (k > 40) w.narrow(1, 32, 8).zero_();      // an all-zero stretch; for k < 64 a whole zero block
            var (q, s) = Q8.Quantize(w);
            Assert.Equal(new[] { n, Q8.Blocks(k) }, s.shape);
            var (rq, rs) = ReferenceQuantize(w.data<float>().ToArray(), (int)n, (int)k);
            Assert.Equal(rq, q.data<sbyte>().ToArray());
            Assert.Equal(rs, Bits(s));
            // Round trip: every weight within half a step of its block.
            var back = Q8.Dequantize(q, s);
            var step = s.to_type(ScalarType.Float32).repeat_interleave(32, 1).narrow(1, 0, k);
            Assert.True(((back - w).abs() <= step * 0.5 + 1e-6 + w.abs() * 1e-3).all().item<bool>(), $"[{n}, {k}] round trip");
        }
        // Halves round away from zero: a block whose max is 127 has d = 1 and q = round(w).
        var t = tensor(new float[] { 127f, 0.5f, -0.5f, 1.5f, -2.5f, 2.4999f });
        var (tq, _) = Q8.Quantize(t.view(1, 6));
        Assert.Equal(new sbyte[] { 127, 1, -1, 2, -3, 2 }, tq.data<sbyte>().ToArray());
    }

    [Fact]
    public void Q8QuantizesBf16SourcesWithoutWideningTheWholeTensor()
    {
        var g = new Generator(8, CPU);
        var w = randn(new long[] { 33, 70 }, generator: g).to_type(ScalarType.BFloat16);
        var (q, s) = Q8.Quantize(w);
        var (q32, s32) = Q8.Quantize(w.to_type(ScalarType.Float32));
        Assert.True(q.equal(q32).all().item<bool>() && s.equal(s32).all().item<bool>());
    }

    /// <summary>The input rule of the integer q8 path written out plainly: per block of 32, d = max|x|/127, q = round(x/d).</summary>
    static double[] ReferenceQuantizedInput(float[] x)
    {
        var back = new double[x.Length];
        for (int c0 = 0; c0 < x.Length; c0 += 32)
        {
            int c1 = Math.Min(x.Length, c0 + 32);
            float amax = 0;
            for (int c = c0; c < c1; c++) amax = Math.Max(amax, Math.Abs(x[c]));
            float d = amax / 127f, id = d == 0 ? 0 : 1f / d;
            for (int c = c0; c < c1; c++) back[c] = (double)d * (int)MathF.Round(x[c] * id, MidpointRounding.AwayFromZero);
        }
        return back;
    }

    [Fact]
    public void Q8QuantizeLeavesNoTemporaryTensorsAlive()
    {
        // A bf16 source is widened to f32 slice by slice; every slice's temporaries must be freed at once, not by the
        // garbage collector (loading a model with q8 would otherwise hold an f32 copy of every weight for a while).
        var w = randn(new long[] { 300, 70 }, generator: new Generator(14, CPU)).to_type(ScalarType.BFloat16);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        var (q, s) = Q8.Quantize(w);
        Assert.Equal(before + 2, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
        q.Dispose(); s.Dispose();
    }

    [Fact]
    public void Q8GemvWithQuantizedInputMatchesTheIntegerProduct()
    {
        using var noGrad = no_grad();
        var g = new Generator(13, CPU);
        foreach (var isa in Isas())
            WithIsa(isa, () =>
            {
                foreach (var (n, k) in Shapes)
                    foreach (var xt in new[] { ScalarType.Float32, ScalarType.BFloat16 })
                    {
                        using var scope = NewDisposeScope();
                        var (q, s) = Q8.Quantize(randn(new[] { n, k }, generator: g));
                        var x = randn(new[] { 1, 1, k }, generator: g).to_type(xt);
                        var y = WeightKernels.Linear(x, q, s);
                        Assert.Equal(new[] { 1L, 1, n }, y.shape);
                        Assert.Equal(xt, y.dtype);
                        var wd = Q8.Dequantize(q, s, ScalarType.Float64);
                        // Against the product with the input quantized by the plain rule: only f32 summation differs.
                        var xhat = tensor(ReferenceQuantizedInput(x.to_type(ScalarType.Float32).data<float>().ToArray()), new[] { 1L, 1, k });
                        var want = nn.functional.linear(xhat, wd);
                        AssertClose(y, want, Magnitude(xhat, wd), xt == ScalarType.Float32 ? 1e-5 : 8e-3, $"{isa} q8·q8 x {xt} [{n}, {k}]");
                        // Against the unquantized input: within half a step of each input block, Σ_b (max|x_b|/254)·Σ|w_b|.
                        var xf = x.to_type(ScalarType.Float64).view(k);
                        long nb = Q8.Blocks(k);
                        var xpad = nn.functional.pad(xf.abs(), new[] { 0L, nb * 32 - k }).view(nb, 32);
                        var half = xpad.amax(new long[] { 1 }) / 254.0;
                        var wabs = nn.functional.pad(wd.abs(), new[] { 0L, nb * 32 - k }).view(n, nb, 32).sum(new long[] { 2 });
                        var bound = (wabs * half).sum(new long[] { 1 }).view(1, 1, n) * 1.001 + Magnitude(x, wd) * 1e-5 + 1e-30;
                        var exact = nn.functional.linear(x.to_type(ScalarType.Float64), wd);
                        var worst = ((y.to_type(ScalarType.Float64) - exact).abs() / bound).max().item<double>();
                        Assert.True(xt != ScalarType.Float32 || worst <= 1.0, $"{isa} q8·q8 [{n}, {k}]: {worst:G3}× the input-rounding bound");
                        // Results do not depend on the thread split.
                        WeightKernels.MinParallelBytes = long.MaxValue;
                        var one = WeightKernels.Linear(x, q, s);
                        WeightKernels.MinParallelBytes = 0;
                        Assert.True(one.equal(y).all().item<bool>(), $"{isa} q8·q8 [{n}, {k}]: threaded result differs from one thread");
                    }
            });
    }

    [Fact]
    public void Q8GemvAndPrefillMatchTheDequantizedProduct()
    {
        using var noGrad = no_grad();
        var g = new Generator(9, CPU);
        foreach (var isa in Isas())
            WithIsa(isa, quantizeActivations: false, body: () =>
            {
                foreach (var (n, k) in Shapes)
                    foreach (var xt in new[] { ScalarType.Float32, ScalarType.BFloat16 })
                        foreach (long rows in new long[] { 1, 3 })
                        {
                            using var scope = NewDisposeScope();
                            var (q, s) = Q8.Quantize(randn(new[] { n, k }, generator: g));
                            var x = randn(new[] { 1, rows, k }, generator: g).to_type(xt);
                            var y = WeightKernels.Linear(x, q, s);
                            Assert.Equal(new[] { 1L, rows, n }, y.shape);
                            Assert.Equal(xt, y.dtype);
                            var wd = Q8.Dequantize(q, s, ScalarType.Float64);
                            var want = nn.functional.linear(x.to_type(ScalarType.Float64), wd);
                            AssertClose(y, want, Magnitude(x, wd), xt == ScalarType.Float32 ? 1e-5 : 8e-3, $"{isa} q8 x {xt} rows {rows} [{n}, {k}]");
                        }
            });
    }

    [Fact]
    public void Q8PrefillTilesCoverEveryRow()
    {
        using var noGrad = no_grad();
        var saved = WeightKernels.PrefillTileBytes;
        try
        {
            WeightKernels.PrefillTileBytes = 1;     // smallest tiles (16 rows): many tiles and a short last one
            var g = new Generator(10, CPU);
            var (q, s) = Q8.Quantize(randn(new long[] { 101, 45 }, generator: g));
            var x = randn(new long[] { 2, 5, 45 }, generator: g);
            var wd = Q8.Dequantize(q, s, ScalarType.Float64);
            AssertClose(WeightKernels.Linear(x, q, s), nn.functional.linear(x.to_type(ScalarType.Float64), wd), Magnitude(x, wd), 1e-5, "tiled prefill");
        }
        finally { WeightKernels.PrefillTileBytes = saved; }
    }

    [Fact]
    public void Q8RejectsGradientsAndBadScales()
    {
        var (q, s) = Q8.Quantize(randn(4, 40));
        var x = randn(new long[] { 1, 40 }, requires_grad: true);
        Assert.Throws<NotSupportedException>(() => WeightKernels.Linear(x, q, s));
        using var noGrad = no_grad();
        Assert.Throws<ArgumentException>(() => WeightKernels.Linear(x, q, null));
        Assert.Throws<ArgumentException>(() => WeightKernels.Linear(x, q, s.narrow(1, 0, 1)));
    }

    [Fact]
    public void HalfBitConversionsMatchLibtorch()
    {
        var v = cat(new[] { randn(4096) * 100, randn(4096) * 1e-6, tensor(new[] { 0f, -0f, float.PositiveInfinity, float.NegativeInfinity, 65504f, 6e-8f }) });
        var f = v.data<float>().ToArray();
        var bf = v.to_type(ScalarType.BFloat16);
        var hf = v.to_type(ScalarType.Float16);
        var bfBits = Bits(bf);
        var hfBits = Bits(hf);
        var bfBack = bf.to_type(ScalarType.Float32).data<float>().ToArray();
        var hfBack = hf.to_type(ScalarType.Float32).data<float>().ToArray();
        for (int i = 0; i < f.Length; i++)
        {
            Assert.Equal(bfBits[i], HalfBits.F32ToBf16(f[i]));
            Assert.Equal(hfBits[i], HalfBits.F32ToF16(f[i]));
            Assert.Equal(bfBack[i], HalfBits.Bf16ToF32(bfBits[i]));
            Assert.Equal(hfBack[i], HalfBits.F16ToF32(hfBits[i]));
        }
    }
}

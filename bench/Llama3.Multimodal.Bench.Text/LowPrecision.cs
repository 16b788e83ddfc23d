// Low-precision weights: decode GEMV kernels (bf16, f16, q8 vs libtorch), q8 prefill GFLOP/s against the measured sgemm
// peak, decode tokens/s of the Llama 3.2 1B shape at f32 / bf16 / q8, and q8/bf16 accuracy against f32 on that shape.
// Run: dotnet run -c Release --project bench/Llama3.Multimodal.Bench.Text -- [kernels [Portable|Avx2|Avx512]|prefill|decode-lp|accuracy-1b]
using System.Diagnostics;
using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

static class LowPrecision
{
    static double Best(int reps, Action body)
    {
        body();
        double best = double.MaxValue;
        for (int i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            body();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return best;
    }

    /// <summary>Single-row products on the 1B shapes: ms per call and weight GB/s for each storage and kernel.</summary>
    public static void Kernels(string? isa)
    {
        using var _ = no_grad();
        if (isa is not null) WeightKernels.Isa = Enum.Parse<KernelIsa>(isa, ignoreCase: true);
        Console.WriteLine($"decode kernels: ISA {WeightKernels.Isa}, {WeightKernels.Threads} threads; best of 20 calls");
        var shapes = new (string Name, long N, long K)[]
        {
            ("qkv 3072x2048", 3072, 2048), ("gate+up 16384x2048", 16384, 2048), ("down 2048x8192", 2048, 8192), ("head 128256x2048", 128256, 2048),
        };
        var g = new Generator(1, CPU);
        foreach (var (name, n, k) in shapes)
        {
            using var scope = NewDisposeScope();
            var w = randn(new[] { n, k }, generator: g) * 0.02;
            var x = randn(new[] { 1, 1, k }, generator: g);
            var wb = w.to_type(ScalarType.BFloat16);
            var wh = w.to_type(ScalarType.Float16);
            var (q, s) = Q8.Quantize(w);
            var xb = x.to_type(ScalarType.BFloat16);
            void Row(string what, double bytes, Action a)
            {
                double t = Best(20, a);
                Console.WriteLine($"  {name,-20} {what,-28} {t * 1e3,8:F3} ms  {bytes / t / 1e9,6:F1} GB/s");
            }
            double n4 = n * k * 4.0, n2 = n * k * 2.0, n1 = n * k * (1 + 2.0 / 32);
            Row("f32 libtorch (SplitGemv)", n4, () => { using var y = SplitGemv.Linear(x, w); });
            Row("bf16 libtorch linear", n2, () => { using var y = nn.functional.linear(xb, wb); });
            Row("bf16 kernel", n2, () => { using var y = WeightKernels.Linear(xb, wb); });
            Row("f16 kernel", n2, () => { using var y = WeightKernels.Linear(x, wh); });
            Row("q8 kernel", n1, () => { using var y = WeightKernels.Linear(x, q, s); });
        }
    }

    /// <summary>Prefill (many rows): GFLOP/s of q8 tiles into GEMM and of bf16 GEMM, against f32 sgemm on the same shapes.</summary>
    public static void Prefill()
    {
        using var _ = no_grad();
        var g = new Generator(2, CPU);
        Console.WriteLine($"prefill GEMM, {get_num_threads()} libtorch threads; best of 5");
        using (var a = randn(new long[] { 512, 2048 }, generator: g))
        using (var b = randn(new long[] { 2048, 2048 }, generator: g))
        {
            double t = Best(5, () => { using var c = torch.mm(a, b); });
            Console.WriteLine($"  sgemm peak probe 512x2048x2048: {2.0 * 512 * 2048 * 2048 / t / 1e9:F1} GFLOP/s");
        }
        foreach (long m in new long[] { 16, 64, 256 })
            foreach (var (name, n, k) in new[] { ("gate+up", 16384L, 2048L), ("down", 2048L, 8192L) })
            {
                using var scope = NewDisposeScope();
                var w = randn(new[] { n, k }, generator: g) * 0.02;
                var x = randn(new[] { 1, m, k }, generator: g);
                var (q, s) = Q8.Quantize(w);
                var wb = w.to_type(ScalarType.BFloat16);
                var xb = x.to_type(ScalarType.BFloat16);
                double flop = 2.0 * m * n * k;
                double tf = Best(5, () => { using var y = nn.functional.linear(x, w); });
                double tq = Best(5, () => { using var y = WeightKernels.Linear(x, q, s); });
                double tb = Best(5, () => { using var y = nn.functional.linear(xb, wb); });
                Console.WriteLine($"  {name,-8} {m,3} rows x [{n}, {k}]: f32 {flop / tf / 1e9,6:F1}  q8 tiles {flop / tq / 1e9,6:F1}  bf16 {flop / tb / 1e9,6:F1} GFLOP/s");
            }
    }

    static LlamaForCausalLM Model(string kind, LlamaConfig cfg)
    {
        var dtype = kind == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;
        using var q = QuantizationSettings.Use(kind == "q8" ? new QuantizationSettings(WeightQuantization.Q8) : null);
        return LlamaForCausalLM.Create(cfg, CPU, dtype).InitializeWeights(1);
    }

    /// <summary>Decode tokens/s of the random 1B shape at f32, bf16 and q8 (each built from the same seed).</summary>
    public static void Decode(string[] kinds)
    {
        var cfg = TextPresets.Get("llama3.2-1b");
        foreach (var kind in kinds)
        {
            var sw = Stopwatch.StartNew();
            using var m = Model(kind, cfg);
            double build = sw.Elapsed.TotalSeconds;
            var rng = new Random(1);
            var ids = Enumerable.Range(0, 16).Select(_ => (long)rng.Next(1000, 100000)).ToArray();
            using var noGrad = no_grad();
            double best = 0, pre = 0;
            for (int rep = 0; rep < 2; rep++)
            {
                using var cache = m.NewCache(1, 64);
                sw.Restart();
                long next;
                using (var s = NewDisposeScope())
                    next = m.Forward(tensor(ids, new long[] { 1, ids.Length }), new ForwardOptions { Cache = cache, LastOnly = true })[0, 0].argmax().item<long>();
                pre = Math.Max(pre, ids.Length / sw.Elapsed.TotalSeconds);
                sw.Restart();
                const int steps = 16;
                for (int i = 0; i < steps; i++)
                {
                    using var s = NewDisposeScope();
                    next = m.Forward(tensor(new[] { next }, new long[] { 1, 1 }), new ForwardOptions { Cache = cache, LastOnly = true })[0, 0].argmax().item<long>();
                }
                best = Math.Max(best, steps / sw.Elapsed.TotalSeconds);
            }
            long bytes = m.parameters().Sum(p => p.numel() * p.element_size()) + QuantizedLayers.Scales(m).Values.Sum(s => s.numel() * 2);
            Console.WriteLine($"llama3.2-1b shape {kind,-4}: weights {bytes / 1e9:F2} GB (built in {build:F1} s), prefill {pre:F1} tok/s (16 tokens), decode {best:F2} tok/s (16 steps, best of 2)");
        }
    }

    /// <summary>q8 and bf16 logits against f32 on the random 1B shape: max/mean error and top-1 agreement.</summary>
    public static void Accuracy(int positions)
    {
        var cfg = TextPresets.Get("llama3.2-1b");
        var rng = new Random(3);
        var ids = tensor(Enumerable.Range(0, positions).Select(_ => (long)rng.Next(1000, 100000)).ToArray(), new long[] { 1, positions });
        Tensor Logits(string kind)
        {
            using var m = Model(kind, cfg);
            using var _ = no_grad();
            return m.Forward(ids).squeeze(0).to_type(ScalarType.Float64);
        }
        using var f = Logits("f32");
        double std = f.std().item<double>();
        var top = f.argmax(-1);
        Console.WriteLine($"accuracy vs f32 on the random llama3.2-1b shape, {positions} positions (one sequence), f32 logit std {std:G3}:");
        foreach (var kind in new[] { "bf16", "q8" })
        {
            using var o = Logits(kind);
            var err = (o - f).abs();
            double agree = o.argmax(-1).eq(top).to_type(ScalarType.Float64).mean().item<double>();
            Console.WriteLine($"  {kind,-4}: max |Δlogit| {err.max().item<double>():G3}, mean {err.mean().item<double>():G3} ({err.mean().item<double>() / std:P2} of the std), top-1 agreement {agree:P1}");
        }
    }
}

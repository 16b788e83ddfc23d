// Decode profiling helpers.
//   decode-loop KIND STEPS: builds the random 1B shape in KIND (f32, bf16, f16, q8), warms up, then runs STEPS greedy
//     decode steps. With PERF_CTL_FIFO set (perf record --control fifo:FIFO -D -1) it enables perf only around the steps,
//     so a profile holds decode alone.
//   gemv-probe [ROUNDS [KINDS]]: the decode GEMVs of the 1B shape at every precision against a plain read of the same
//     bytes, alternated call by call in one process (weights cycled over more than the last-level cache), as ratios.
//   gemv-cpu [ROUNDS [KINDS]]: the same on one thread, timed in the thread's CPU seconds, so that time the thread spends
//     descheduled on a shared machine does not count. KINDS: f32, bf16, f16, q8, and the previous paths f32-torch
//     (libtorch's GEMV) and q8-f32x (q8 weights times an f32 input).
//   decode-ab KIND STEPS ROUNDS: whole decode steps alternated between the kernels and the previous paths.
//   decode-fused-ab KIND STEPS ROUNDS: whole decode steps alternated between the C# decode step (WeightKernels.FusedDecode)
//     and the same kernels called from the per-layer libtorch path.
//   decode-fused-cpu KIND STEPS ROUNDS: the same on one thread, timed in the thread's CPU seconds (for a shared machine).
//   decode-read KIND STEPS ROUNDS: whole decode steps alternated, STEPS at a time, with plain reads of every 2-D weight
//     of the same model (all threads), in one process: decode time against the time to read the bytes a step reads.
//     This VM's memory bandwidth changes by up to 1.7x within minutes, so only this in-process ratio says how close
//     the decode step is to the read limit.
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

static class DecodeProfile
{
    static void Perf(string what)
    {
        var fifo = Environment.GetEnvironmentVariable("PERF_CTL_FIFO");
        if (string.IsNullOrEmpty(fifo)) return;
        File.WriteAllText(fifo, what + "\n");
        Thread.Sleep(50);
    }

    /// <summary>The random llama3.2-1b shape in KIND (f32, bf16, f16, q8), seed 1.</summary>
    static LlamaForCausalLM Model1B(string kind)
    {
        var cfg = TextPresets.Get("llama3.2-1b");
        var dtype = kind switch { "bf16" => ScalarType.BFloat16, "f16" => ScalarType.Float16, _ => ScalarType.Float32 };
        using (QuantizationSettings.Use(kind == "q8" ? new QuantizationSettings(WeightQuantization.Q8) : null))
            return LlamaForCausalLM.Create(cfg, CPU, dtype).InitializeWeights(1);
    }

    public static unsafe void DecodeRead(string kind, int steps, int rounds)
    {
        var m = Model1B(kind);
        using var noGrad = no_grad();
        // Every 2-D tensor a decode step reads: the projections, the q8 scales and the (tied) embedding as output head.
        // Views (q/k/v of the fused q/k/v weight, gate/up) share memory: overlapping ranges are merged, so each byte counts once.
        var spans = m.parameters().Concat(m.buffers()).Where(t => t.dim() == 2)
            .Select(t => ((long)TensorPointersOf(t), t.numel() * t.element_size())).OrderBy(r => r.Item1).ToList();
        var regions = new List<(IntPtr, long)>();
        long start = -1, end = -1;
        foreach (var (a, n) in spans)
        {
            if (a > end) { if (start >= 0) regions.Add(((IntPtr)start, end - start)); start = a; end = a + n; }
            else end = Math.Max(end, a + n);
        }
        if (start >= 0) regions.Add(((IntPtr)start, end - start));
        long bytes = regions.Sum(r => r.Item2);
        using var cache = m.NewCache(1, rounds * steps + 8);
        long next = 791;
        void Step()
        {
            using var s = NewDisposeScope();
            next = m.Forward(tensor(new[] { next }, new long[] { 1, 1 }), new ForwardOptions { Cache = cache, LastOnly = true })[0, 0].argmax().item<long>();
        }
        int threads = WeightKernels.Threads;
        void ReadAll()
        {
            // One parallel pass: thread t reads its share of every region (as the decode kernels split rows).
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
            {
                foreach (var (ptr, n) in regions)
                {
                    long per = n / threads / 256 * 256;
                    long from = t * per, to = t == threads - 1 ? n : from + per;
                    ReadOne((byte*)ptr + from, to - from);
                }
            });
        }
        Step(); Step(); ReadAll();   // warm-up (said so in the output)
        double td = 0, tr = 0;
        var ratios = new List<double>();
        for (int r = 0; r < rounds; r++)
        {
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < steps; i++) Step();
            double d = sw.Elapsed.TotalSeconds;
            sw.Restart();
            for (int i = 0; i < steps; i++) ReadAll();
            double rd = sw.Elapsed.TotalSeconds;
            td += d; tr += rd;
            ratios.Add(rd / d);
        }
        ratios.Sort();
        Console.WriteLine($"{kind}: {bytes / 1e9:F3} GB of 2-D weights; {rounds} rounds of {steps} decode steps then {steps} reads (after 2 warm-up steps and a read): " +
                          $"decode {rounds * steps / td:F2} tok/s, read {bytes * rounds * steps / tr / 1e9:F1} GB/s, decode / read time {tr / td:F3} " +
                          $"(rounds: min {ratios[0]:F3}, median {ratios[ratios.Count / 2]:F3}, max {ratios[^1]:F3})");
        m.Dispose();
    }

    public static void Loop(string kind, int steps)
    {
        var m = Model1B(kind);
        using var noGrad = no_grad();
        using var cache = m.NewCache(1, steps + 64);
        long next;
        using (var s = NewDisposeScope())
            next = m.Forward(tensor(new long[] { 128000, 791, 4062, 14198, 39935 }, new long[] { 1, 5 }), new ForwardOptions { Cache = cache, LastOnly = true })[0, 0].argmax().item<long>();
        for (int i = 0; i < 4; i++)
        {
            using var s = NewDisposeScope();
            next = m.Forward(tensor(new[] { next }, new long[] { 1, 1 }), new ForwardOptions { Cache = cache, LastOnly = true })[0, 0].argmax().item<long>();
        }
        Perf("enable");
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < steps; i++)
        {
            using var s = NewDisposeScope();
            next = m.Forward(tensor(new[] { next }, new long[] { 1, 1 }), new ForwardOptions { Cache = cache, LastOnly = true })[0, 0].argmax().item<long>();
        }
        double t = sw.Elapsed.TotalSeconds;
        Perf("disable");
        Console.WriteLine($"{kind}: {steps} decode steps, {steps / t:F2} tok/s ({t / steps * 1e3:F1} ms/token)");
        m.Dispose();
    }

    /// <summary>
    /// decode-ab KIND STEPS ROUNDS: one model, decode steps alternated between this library's kernels (f32 kernel, q8 with
    /// quantized input) and the previous paths (libtorch f32 GEMV, q8 with f32 input), best round of each.
    /// </summary>
    public static void AB(string kind, int steps, int rounds, bool fused = false, bool cpu = false)
    {
        if (cpu)
        {
            WeightKernels.MinParallelBytes = long.MaxValue;
            SplitGemv.Blocks = 1;
            torch.set_num_threads(1);
        }
        var m = Model1B(kind);
        using var noGrad = no_grad();
        double bestNew = 0, bestOld = 0;
        for (int r = 0; r < rounds; r++)
            foreach (bool kernels in new[] { true, false })
            {
                if (fused) WeightKernels.FusedDecode = kernels;
                else (WeightKernels.F32Kernels, WeightKernels.QuantizeQ8Activations) = (kernels, kernels);
                using var cache = m.NewCache(1, steps + 16);
                long next;
                using (var s = NewDisposeScope())
                    next = m.Forward(tensor(new long[] { 128000, 791, 4062 }, new long[] { 1, 3 }), new ForwardOptions { Cache = cache, LastOnly = true })[0, 0].argmax().item<long>();
                var sw = Stopwatch.StartNew();
                double c0 = ThreadCpu();
                for (int i = 0; i < steps; i++)
                {
                    using var s = NewDisposeScope();
                    next = m.Forward(tensor(new[] { next }, new long[] { 1, 1 }), new ForwardOptions { Cache = cache, LastOnly = true })[0, 0].argmax().item<long>();
                }
                double tps = steps / (cpu ? ThreadCpu() - c0 : sw.Elapsed.TotalSeconds);
                if (kernels) bestNew = Math.Max(bestNew, tps); else bestOld = Math.Max(bestOld, tps);
                Console.WriteLine($"  round {r} {(kernels ? fused ? "C# step" : "kernels" : fused ? "libtorch ops" : "previous")}: {tps:F2} tok/s");
            }
        Console.WriteLine(fused
            ? $"{kind}: best {bestNew:F2} tok/s with the C# decode step vs {bestOld:F2} with libtorch ops between the kernels ({bestNew / bestOld:F2}×), {steps} steps × {rounds} rounds each"
            : $"{kind}: best {bestNew:F2} tok/s with the kernels vs {bestOld:F2} previous path ({bestNew / bestOld:F2}×), {steps} steps × {rounds} rounds each");
        m.Dispose();
    }

    /// <summary>load-rss DIR: loads DIR with q8 at load time and prints the resident set every few tensors.</summary>
    public static void LoadRss(string dir)
    {
        static string Rss() => File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];
        var sw = Stopwatch.StartNew();
        using var m = LlamaForCausalLM.FromPretrained(dir, new LoadOptions
        {
            Quantize = WeightQuantization.Q8,
            Progress = (d, t) => { if (d % 8 == 0 || d == t) Console.WriteLine($"  {d}/{t} tensors, {sw.Elapsed.TotalSeconds:F1} s, VmRSS {long.Parse(Rss()) / 1024} MB"); },
        });
        Console.WriteLine($"loaded in {sw.Elapsed.TotalSeconds:F1} s, VmRSS {long.Parse(Rss()) / 1024} MB");
    }

    /// <summary>Sum of every 64-byte line of [p, p+bytes) with AVX-512 (or AVX2) loads, split over the pool like a GEMV.</summary>
    static unsafe float ReadProbe(byte* p, long bytes)
    {
        float total = 0;
        int threads = WeightKernels.Threads;
        long per = bytes / threads / 64 * 64;
        var sums = new float[threads];
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
        {
            float* q = (float*)(p + t * per);
            long n = (t == threads - 1 ? bytes - t * per : per) / 4;
            var a0 = Vector512<float>.Zero; var a1 = Vector512<float>.Zero; var a2 = Vector512<float>.Zero; var a3 = Vector512<float>.Zero;
            long i = 0;
            for (; i + 64 <= n; i += 64)
            {
                a0 += Vector512.Load(q + i); a1 += Vector512.Load(q + i + 16);
                a2 += Vector512.Load(q + i + 32); a3 += Vector512.Load(q + i + 48);
            }
            sums[t] = Vector512.Sum(a0 + a1 + a2 + a3);
        });
        foreach (var s in sums) total += s;
        return total;
    }

    public static unsafe void GemvProbe(int rounds, string[] kinds)
    {
        using var _ = no_grad();
        Console.WriteLine($"decode GEMV vs a plain read of the same bytes: ISA {WeightKernels.Isa}, {WeightKernels.Threads} threads, {rounds} alternated rounds, best of each");
        var shapes = new (string Name, long N, long K)[]
        {
            ("qkv", 3072, 2048), ("o", 2048, 2048), ("gate+up", 16384, 2048), ("down", 2048, 8192), ("head", 128256, 2048),
        };
        var g = new Generator(1, CPU);
        foreach (var (name, n, k) in shapes)
            foreach (var kind in kinds)
            {
                using var scope = NewDisposeScope();
                // "f32-torch": libtorch's GEMV (SplitGemv); "q8-f32x": q8 weights times the unquantized input.
                WeightKernels.F32Kernels = kind != "f32-torch";
                WeightKernels.QuantizeQ8Activations = kind != "q8-f32x";
                string fmt = kind switch { "f32-torch" => "f32", "q8-f32x" => "q8", _ => kind };
                long esz = fmt switch { "f32" => 4, "q8" => 1, _ => 2 };
                long bytes1 = n * k * esz;
                int copies = (int)Math.Max(1, Math.Min(64, (512L << 20) / bytes1));   // cycle over ≥ 512 MB where possible
                var ws = new List<(Tensor W, Tensor? S)>();
                var src = randn(new[] { n, k }, generator: g) * 0.02;
                for (int c = 0; c < copies; c++)
                {
                    if (fmt == "q8") { var (q, s) = Q8.Quantize(src); ws.Add((q, s)); }
                    else ws.Add((src.to_type(fmt switch { "bf16" => ScalarType.BFloat16, "f16" => ScalarType.Float16, _ => ScalarType.Float32 }).clone(), null));
                }
                var x = randn(new[] { 1, 1, k }, generator: g);
                long bytes = bytes1 + (fmt == "q8" ? n * Q8.Blocks(k) * 2 : 0);
                var tk = new List<double>(); var tp = new List<double>();
                int idx = 0;
                for (int r = 0; r < rounds + 2; r++)
                {
                    var (w, s) = ws[idx++ % copies];
                    var sw = Stopwatch.StartNew();
                    using (var y = WeightKernels.Linear(x, w, s)) { }
                    double a = sw.Elapsed.TotalSeconds;
                    (w, s) = ws[idx++ % copies];
                    sw.Restart();
                    ReadProbe((byte*)TensorPointersOf(w), bytes1);
                    double b = sw.Elapsed.TotalSeconds;
                    if (r >= 2) { tk.Add(a); tp.Add(b); }
                }
                tk.Sort(); tp.Sort();
                // Best of the alternated rounds: on a shared machine the fastest round is the least disturbed one.
                double mk = tk[0], mp = tp[0];
                Console.WriteLine($"  {name,-8} [{n}x{k}] {kind,-9} kernel {mk * 1e3,8:F3} ms {bytes / mk / 1e9,6:F1} GB/s   read {mp * 1e3,8:F3} ms {bytes1 / mp / 1e9,6:F1} GB/s   kernel/read bandwidth {bytes / mk / (bytes1 / mp),5:F2}");
            }
    }

    [StructLayout(LayoutKind.Sequential)]
    struct Timespec { public long Sec, Nsec; }

    [DllImport("libc")]
    static extern int clock_gettime(int clock, out Timespec t);

    /// <summary>CPU seconds of the calling thread (CLOCK_THREAD_CPUTIME_ID): time the thread was descheduled does not count.</summary>
    static double ThreadCpu() { clock_gettime(3, out var t); return t.Sec + t.Nsec * 1e-9; }

    /// <summary>Single-threaded variant of <see cref="GemvProbe"/> timed in thread CPU seconds (for a shared machine).</summary>
    public static unsafe void GemvCpu(int rounds, string[] kinds)
    {
        using var _ = no_grad();
        WeightKernels.MinParallelBytes = long.MaxValue;   // one thread, libtorch's GEMV included
        SplitGemv.Blocks = 1;
        torch.set_num_threads(1);
        Console.WriteLine($"decode GEMV vs a plain read, one thread, thread CPU time: ISA {WeightKernels.Isa}, {rounds} alternated rounds, best of each");
        var shapes = new (string Name, long N, long K)[] { ("gate+up", 16384, 2048), ("down", 2048, 8192), ("qkv", 3072, 2048) };
        var g = new Generator(1, CPU);
        foreach (var (name, n, k) in shapes)
            foreach (var kind in kinds)
            {
                using var scope = NewDisposeScope();
                WeightKernels.F32Kernels = kind != "f32-torch";
                WeightKernels.QuantizeQ8Activations = kind != "q8-f32x";
                string fmt = kind switch { "f32-torch" => "f32", "q8-f32x" => "q8", _ => kind };
                long esz = fmt switch { "f32" => 4, "q8" => 1, _ => 2 };
                long bytes1 = n * k * esz;
                int copies = (int)Math.Max(2, Math.Min(64, (256L << 20) / bytes1));
                var ws = new List<(Tensor W, Tensor? S)>();
                var src = randn(new[] { n, k }, generator: g) * 0.02;
                for (int c = 0; c < copies; c++)
                {
                    if (fmt == "q8") { var (q, s) = Q8.Quantize(src); ws.Add((q, s)); }
                    else ws.Add((src.to_type(fmt switch { "bf16" => ScalarType.BFloat16, "f16" => ScalarType.Float16, _ => ScalarType.Float32 }).clone(), null));
                }
                var x = randn(new[] { 1, 1, k }, generator: g);
                long bytes = bytes1 + (fmt == "q8" ? n * Q8.Blocks(k) * 2 : 0);
                double bk = double.MaxValue, bp = double.MaxValue;
                int idx = 0;
                for (int r = 0; r < rounds + 2; r++)
                {
                    var (w, s) = ws[idx++ % copies];
                    double t0 = ThreadCpu();
                    using (var y = WeightKernels.Linear(x, w, s)) { }
                    double a = ThreadCpu() - t0;
                    (w, s) = ws[idx++ % copies];
                    t0 = ThreadCpu();
                    ReadOne((byte*)TensorPointersOf(w), bytes1);
                    double b = ThreadCpu() - t0;
                    if (r >= 2) { bk = Math.Min(bk, a); bp = Math.Min(bp, b); }
                }
                Console.WriteLine($"  {name,-8} [{n}x{k}] {kind,-9} kernel {bk * 1e3,8:F3} ms {bytes / bk / 1e9,6:F1} GB/s   read {bp * 1e3,8:F3} ms {bytes1 / bp / 1e9,6:F1} GB/s   kernel/read {bytes / bk / (bytes1 / bp),5:F2}");
            }
    }

    static unsafe float ReadOne(byte* p, long bytes)
    {
        float* q = (float*)p;
        long n = bytes / 4;
        var a0 = Vector512<float>.Zero; var a1 = Vector512<float>.Zero; var a2 = Vector512<float>.Zero; var a3 = Vector512<float>.Zero;
        for (long i = 0; i + 64 <= n; i += 64)
        {
            a0 += Vector512.Load(q + i); a1 += Vector512.Load(q + i + 16);
            a2 += Vector512.Load(q + i + 32); a3 += Vector512.Load(q + i + 48);
        }
        return Vector512.Sum(a0 + a1 + a2 + a3);
    }

    [DllImport("LibTorchSharp")]
    static extern IntPtr THSTensor_data(IntPtr handle);

    static unsafe void* TensorPointersOf(Tensor t) => (void*)THSTensor_data(t.Handle);
}

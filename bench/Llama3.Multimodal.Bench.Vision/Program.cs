// Vision benchmarks: preprocessing, image-encoder throughput, time to first token and caption latency.
// Run: dotnet run -c Release --project bench/Llama3.Multimodal.Bench.Vision [-- --encoder-layers N|full] [--dtype f32|bf16]
using System.Diagnostics;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

int encoderLayers = 2;   // local layers of the 11B-shaped encoder actually run; "full": all 32 local + 8 global
var encoderDtype = ScalarType.Float32;
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--encoder-layers") { i++; encoderLayers = args[i] == "full" ? 0 : int.Parse(args[i]); }
    else if (args[i] == "--dtype") encoderDtype = args[++i] switch
    {
        "f32" => ScalarType.Float32,
        "bf16" => ScalarType.BFloat16,
        var d => throw new ArgumentException($"--dtype '{d}': f32 or bf16."),
    };
}
string dtypeName = encoderDtype == ScalarType.BFloat16 ? "bf16" : "f32";

Console.WriteLine($"load average at start: {File.ReadAllText("/proc/loadavg").Trim()}");
Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}, torch threads {torch.get_num_threads()}, TorchSharp CPU f32");
Console.WriteLine($"command: dotnet run -c Release --project bench/Llama3.Multimodal.Bench.Vision -- --encoder-layers {(encoderLayers == 0 ? "full" : encoderLayers)} --dtype {dtypeName}");

static RgbImage Noise(int w, int h, int seed)
{
    var rng = new Random(seed);
    var p = new byte[w * h * 3];
    for (int i = 0; i < p.Length; i++) p[i] = (byte)((i / 3 % w + i / 3 / w + rng.Next(32)) & 255);
    return new RgbImage(w, h, p);
}

static double Median(List<double> xs) { xs.Sort(); return xs[xs.Count / 2]; }

// CPU seconds used by this process (all threads): less sensitive than wall time to other jobs on a shared machine.
static double Cpu() => Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;

static double PeakRssMb()
{
    foreach (var line in File.ReadLines("/proc/self/status"))
        if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0;
    return 0;
}

// 1. Preprocessing at T = 560.
var pre = new ImagePreprocessor(560);
foreach (var (w, h) in new[] { (1120, 1120), (1920, 1080), (4000, 3000) })
{
    var img = Noise(w, h, 1);
    using (pre.Process(img)) { }
    var times = new List<double>();
    double c0 = Cpu();
    for (int r = 0; r < 7; r++)
    {
        var sw = Stopwatch.StartNew();
        using var p = pre.Process(img);
        times.Add(sw.Elapsed.TotalMilliseconds);
    }
    double cpuMs = (Cpu() - c0) * 1000 / 7;
    var g = ImagePreprocessor.ChooseGrid(h, w, 560, pre.AspectRatios);
    Console.WriteLine($"preprocess {w}x{h} → grid {g.H}x{g.W}: median {Median(times):F1} ms wall, {cpuMs:F1} ms CPU per image (7 runs)");
}
{
    var img = Noise(1920, 1080, 2);
    var times = new List<double>();
    for (int r = 0; r < 7; r++)
    {
        var sw = Stopwatch.StartNew();
        PilBilinear.Resize(img, 1120, 630);
        times.Add(sw.Elapsed.TotalMilliseconds);
    }
    Console.WriteLine($"Pillow-bilinear resize 1920x1080 → 1120x630: median {Median(times):F1} ms");
}

// 2. tiny-vision: encoder throughput, time to first token, caption latency.
using (var m = VisionLanguageModel.Create(VisionPresets.Get("tiny-vision")).InitializeWeights(1))
{
    var img = Noise(640, 480, 3);
    using var batch = m.Preprocessor.Batch(new[] { (IReadOnlyList<RgbImage>)new[] { img } });
    using (no_grad())
    {
        using (m.EncodeImages(batch)) { }
        var sw = Stopwatch.StartNew();
        double c0 = Cpu();
        int n = 20;
        for (int i = 0; i < n; i++) using (m.EncodeImages(batch)) { }
        Console.WriteLine($"tiny-vision encoder+projector: {n / sw.Elapsed.TotalSeconds:F1} images/s wall, {(Cpu() - c0) * 1000 / n:F1} ms CPU per image (4 tile slots, {m.Config.Vision.TokensPerTile} tokens/tile)");
    }
    var opts = new GenerationOptions { MaxNewTokens = 32, StopTokens = Array.Empty<int>() };
    m.Generate(new[] { img }, "Describe this image.", opts with { MaxNewTokens = 2 });
    var ttft = new List<double>();
    var total = new List<double>();
    GenerationResult? last = null;
    double cpu0 = Cpu();
    for (int r = 0; r < 5; r++)
    {
        var sw = Stopwatch.StartNew();
        double first = 0;
        last = m.Generate(new[] { img }, "Describe this image.", opts, _ => { if (first == 0) first = sw.Elapsed.TotalMilliseconds; });
        total.Add(sw.Elapsed.TotalMilliseconds);
        ttft.Add(first);
    }
    double cpuPer = (Cpu() - cpu0) * 1000 / 5;
    Console.WriteLine($"tiny-vision caption (640x480 image, {last!.PromptTokens}-token prompt, 32 new tokens): time to first token {Median(ttft):F1} ms " +
                      $"(incl. preprocessing + encoder), total {Median(total):F1} ms wall / {cpuPer:F0} ms CPU, decode {last.DecodeSteps / last.DecodeSeconds:F0} tokens/s");
    Console.WriteLine($"peak RSS so far: {PeakRssMb():F0} MB");
}

// 3. 11B-shaped image encoder (random weights) in the chosen dtype: `encoderLayers` local layers + 1 global at full width
// and sequence (4 × 1608 tokens), extrapolated per layer to 32 + 8 layers; or, with --encoder-layers full, all of it.
{
    var full = VisionPresets.Get("llama3.2-11b-vision").Vision;
    bool all = encoderLayers == 0;
    var cut = all ? full : full with { NumHiddenLayers = encoderLayers, NumGlobalLayers = 1, IntermediateLayersIndices = new[] { 0 } };
    using var enc = new VisionModel(cut, CPU, encoderDtype);
    WeightInit.Apply(enc, 1, 0.02);
    using var batch = new ImagePreprocessor(full).Batch(new[] { (IReadOnlyList<RgbImage>)new[] { Noise(1120, 1120, 4) } });
    using (no_grad())
    {
        using var pixels = batch.PixelValues.to_type(encoderDtype);
        var sw = Stopwatch.StartNew();
        double c0 = Cpu();
        using (enc.Forward(pixels, batch.AspectRatioIds, batch.AspectRatioMask)) { }
        double s = sw.Elapsed.TotalSeconds;
        Console.WriteLine($"  (CPU time of that run: {Cpu() - c0:F1} s; {torch.get_num_threads()} threads; no warm-up: this is the first forward)");
        if (all)
            Console.WriteLine($"11B-shaped encoder ({dtypeName}), one 1120x1120 image (2x2 tiles, 6432 tokens), all 32 + 8 layers: {s:F1} s, peak RSS {PeakRssMb():F0} MB");
        else
        {
            int layers = encoderLayers + 1;
            double perLayer = s / layers;   // embeddings/norms are negligible next to a 6432-token layer
            Console.WriteLine($"11B-shaped encoder ({dtypeName}), one 1120x1120 image (2x2 tiles, 6432 tokens), {layers} layers run: {s:F2} s " +
                              $"→ {perLayer:F2} s/layer → ≈{perLayer * 40:F0} s per image for 32 + 8 layers (≈{1 / (perLayer * 40):F4} images/s), peak RSS {PeakRssMb():F0} MB");
        }
    }
}

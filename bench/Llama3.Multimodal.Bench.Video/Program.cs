// Video benchmarks: sampling + decoding 64 frames from a 1-minute 720p clip (rendered here by ffmpeg), the tiny
// temporal aggregator, and a whole tiny-video prompt (frames → image encoder → aggregator → generation).
// Run: dotnet run -c Release --project bench/Llama3.Multimodal.Bench.Video -- [all|params|decode|aggregator|prompt]
using System.Diagnostics;
using System.Runtime.InteropServices;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Video;
using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

string mode = args.Length > 0 ? args[0] : "all";
Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {DeviceSpec.Backend()}, {RuntimeInformation.OSDescription}");
Console.WriteLine($"command: dotnet run -c Release --project bench/Llama3.Multimodal.Bench.Video -- {mode}");
string dir = Path.Combine(Path.GetTempPath(), "llama3mm-bench-video");
Directory.CreateDirectory(dir);
try
{
    if (mode is "all" or "params") Params();
    if (mode is "all" or "decode") Decode(dir);
    if (mode is "all" or "aggregator") Aggregator();
    if (mode is "all" or "prompt") Prompt(dir);
}
finally { Directory.Delete(dir, true); }

static void Params()
{
    var meta = torch.device(DeviceType.META);
    foreach (string name in VideoPresets.Names)
    {
        var cfg = VideoPresets.Get(name);
        using var m = VideoLanguageModel.Create(cfg, meta);
        long agg = m.video_model.aggregator.ParameterCount(), video = m.VideoParameterCount();
        Console.WriteLine($"{name}: total {m.ParameterCount():N0}, video adapter {video:N0} = aggregator {agg:N0} " +
            $"+ {m.video_model.cross_attention_layers.Count} video cross-attention layers before decoder layers [{string.Join(", ", cfg.VideoCrossAttentionLayers)}] of {cfg.Base.Text.NumLayers} " +
            $"({video - agg:N0}); {cfg.Video.NumFrames} frames, groups of {cfg.Video.Aggregator.FramesPerGroup}, " +
            $"{cfg.Video.Aggregator.Latents} latents × {cfg.Video.Aggregator.NumLayers} layers");
    }
}

static double Median(List<double> xs) { xs.Sort(); return xs[xs.Count / 2]; }

static long RssMb()
{
    foreach (var line in File.ReadLines("/proc/self/status"))
        if (line.StartsWith("VmRSS:")) return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024;
    return 0;
}

static string Render(string dir, string name, params string[] args)
{
    string path = Path.Combine(dir, name);
    if (File.Exists(path)) return path;
    var psi = new ProcessStartInfo("ffmpeg") { UseShellExecute = false, RedirectStandardError = true };
    foreach (var a in new[] { "-v", "error", "-y", "-nostdin" }.Concat(args).Append(path)) psi.ArgumentList.Add(a);
    var sw = Stopwatch.StartNew();
    using var p = Process.Start(psi)!;
    string err = p.StandardError.ReadToEnd();
    p.WaitForExit();
    if (p.ExitCode != 0) throw new InvalidOperationException("ffmpeg failed: " + err);
    Console.WriteLine($"rendered {name} in {sw.Elapsed.TotalSeconds:F1} s ({new FileInfo(path).Length / 1e6:F1} MB)");
    return path;
}

static void Decode(string dir)
{
    // 60 s of 1280×720 at 30 fps (1800 frames), H.264 (x264 preset medium, keyframe every 250 frames), moving test pattern.
    string clip = Render(dir, "720p60s.mp4", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=60",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p");
    var info = VideoProbe.Probe(clip);
    Console.WriteLine($"clip: {info.CodedWidth}×{info.CodedHeight}, {info.FrameCount} frames, {info.DurationSeconds:F1} s, {info.FrameRate:F2} fps, {info.Codec}");
    var probe = new List<double>();
    for (int i = 0; i < 3; i++) { var sw = Stopwatch.StartNew(); VideoProbe.Probe(clip); probe.Add(sw.Elapsed.TotalSeconds); }
    Console.WriteLine($"probe (ffprobe, packets counted): median {Median(probe):F3} s");
    foreach (var (label, o) in new[]
    {
        ("64 frames at 1280×720 (native)", new FrameSamplingOptions { NumFrames = 64 }),
        ("64 frames fitted into 1120×1120 (4 tiles of 560)", new FrameSamplingOptions { NumFrames = 64, Width = 1120, Height = 1120 }),
        ("64 frames fitted into 448×448 (tiny-size canvas)", new FrameSamplingOptions { NumFrames = 64, Width = 448, Height = 448 }),
    })
    {
        var times = new List<double>();
        for (int i = 0; i < 3; i++)
        {
            var sw = Stopwatch.StartNew();
            using var f = VideoFrameReader.Read(clip, o);
            times.Add(sw.Elapsed.TotalSeconds);
        }
        Console.WriteLine($"sample + decode {label}: median {Median(times):F2} s (runs {string.Join(", ", times.Select(t => t.ToString("F2")))}), RSS {RssMb()} MB");
    }
}

static void Aggregator()
{
    var cfg = VideoPresets.Get("tiny-video").Video.Aggregator;
    using var agg = new TemporalAggregator(cfg).InitializeWeights(1);
    using var noGrad = torch.no_grad();
    foreach (int frames in new[] { 8, 16, 32, 64 })
    {
        using var x = torch.randn(1, frames, cfg.TokensPerFrame, cfg.Dim);
        for (int w = 0; w < 3; w++) agg.Forward(x).Dispose();
        var times = new List<double>();
        for (int i = 0; i < 20; i++)
        {
            var sw = Stopwatch.StartNew();
            agg.Forward(x).Dispose();
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        Console.WriteLine($"tiny aggregator ({cfg.NumLayers} layer, {cfg.Latents} latents, dim {cfg.Dim}, {cfg.TokensPerFrame} tokens/frame, groups of {cfg.FramesPerGroup}): " +
            $"{frames} frames → {cfg.GroupsFor(frames)} aggregated, median {Median(times):F2} ms");
    }
    var rss = new List<long> { RssMb() };
    long live = torch.Tensor.TotalCount;
    using (var x = torch.randn(1, 64, cfg.TokensPerFrame, cfg.Dim))
        for (int round = 0; round < 5; round++)
        {
            for (int i = 0; i < 200; i++) agg.Forward(x).Dispose();
            rss.Add(RssMb());
        }
    Console.WriteLine($"RSS every 200 aggregator calls (64 frames): {string.Join(" → ", rss)} MB; live tensors {live} → {torch.Tensor.TotalCount}");
}

static void Prompt(string dir)
{
    string clip = Render(dir, "square.mp4", "-f", "lavfi", "-i",
        "color=c=black:s=320x240:r=30:d=10[bg];color=c=red:s=32x32:r=30[sq];[bg][sq]overlay=x='floor(28*t)':y=100:shortest=1",
        "-c:v", "libx264", "-pix_fmt", "yuv420p");
    var cfg = VideoPresets.Get("tiny-video");
    using var m = VideoLanguageModel.Create(cfg).InitializeWeights(1);
    using (var noGrad = torch.no_grad())
        foreach (var (name, p) in m.named_parameters())
            if (name.StartsWith("video_model.", StringComparison.Ordinal) && name.Contains("_gate")) p.fill_(0.5);
    Console.WriteLine($"tiny-video: {m.ParameterCount() / 1e6:F2} M parameters ({m.VideoParameterCount() / 1e6:F3} M video), {cfg.Video.NumFrames} frames");
    var opts = new GenerationOptions { MaxNewTokens = 16, StopTokens = Array.Empty<int>() };
    m.Generate(clip, "What moves in this video?", opts);   // warm-up
    var total = new List<double>(); var read = new List<double>(); var enc = new List<double>(); var gen = new List<double>();
    GenerationResult? last = null;
    for (int i = 0; i < 5; i++)
    {
        var sw = Stopwatch.StartNew();
        using var frames = m.ReadFrames(clip);
        read.Add(sw.Elapsed.TotalSeconds);
        var s2 = Stopwatch.StartNew();
        using (var noGrad = torch.no_grad()) m.EncodeVideo(frames).Dispose();
        enc.Add(s2.Elapsed.TotalSeconds);
        var s3 = Stopwatch.StartNew();
        last = m.Generate(VideoPrompt.EncodeInstruct(m.Tokenizer, "What moves in this video?"), frames, opts);
        gen.Add(s3.Elapsed.TotalSeconds);
        sw.Restart();
        m.Generate(clip, "What moves in this video?", opts);
        total.Add(sw.Elapsed.TotalSeconds);
    }
    Console.WriteLine($"tiny-video prompt, medians of 5: read frames {Median(read) * 1e3:F0} ms, encode + aggregate {Median(enc) * 1e3:F0} ms, " +
        $"generate (encode + prefill + 16 tokens) {Median(gen) * 1e3:F0} ms; whole Generate(path) {Median(total) * 1e3:F0} ms");
    Console.WriteLine($"  last: prompt {last!.PromptTokens} tokens, prefill {last.PrefillSeconds * 1e3:F1} ms, decode {last.DecodeSteps} steps in {last.DecodeSeconds * 1e3:F1} ms ({last.DecodeSteps / Math.Max(last.DecodeSeconds, 1e-9):F0} tokens/s)");
    Console.WriteLine($"RSS {RssMb()} MB");
}

// Speech benchmarks: resampling, log-mel, encoder real-time factors, tiny-speech transcription latency.
// dotnet run -c Release --project bench/Llama3.Multimodal.Bench.Speech [-- --full] [--device cpu|cuda]
using System.Diagnostics;
using Llama3.Multimodal.Speech;
using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

bool full = args.Contains("--full");
int di = Array.IndexOf(args, "--device");
var device = DeviceSpec.Parse(di >= 0 ? args[di + 1] : "cpu");
Console.WriteLine($"command: dotnet run -c Release --project bench/Llama3.Multimodal.Bench.Speech -- {string.Join(' ', args)}");
Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {DeviceSpec.Backend()}, device {device}, torch threads {torch.get_num_threads()}");

static double Median(IEnumerable<double> xs) { var a = xs.OrderBy(x => x).ToArray(); return a[a.Length / 2]; }
static double Time(Action a, int reps)
{
    a(); // warm-up
    return Median(Enumerable.Range(0, reps).Select(_ => { var sw = Stopwatch.StartNew(); a(); return sw.Elapsed.TotalSeconds; }));
}
static float[] Noise(int n, int seed)
{
    var r = new Random(seed);
    var s = new float[n];
    for (int i = 0; i < n; i++) s[i] = (float)(0.3 * Math.Sin(i * 0.07) + 0.1 * (r.NextDouble() - 0.5));
    return s;
}
void Sync() { if (device.type == DeviceType.CUDA) torch.cuda.synchronize(); }

// 1. Resampler: 60 s at 44.1 kHz → 16 kHz.
var a441 = Noise(44100 * 60, 1);
double tRes = Time(() => Resampler.Resample(a441, 44100, 16000), 3);
Console.WriteLine($"resample 60 s 44.1→16 kHz: {tRes * 1000:F0} ms (RTF {tRes / 60:F5})");

// 2. Log-mel for 60 s.
var a16 = Noise(16000 * 60, 2);
using (var lm = new LogMelSpectrogram(device))
{
    using var audioT = torch.tensor(a16).to(device);
    double tMel = Time(() => { using var f = lm.Compute(audioT); Sync(); }, 5);
    Console.WriteLine($"log-mel 60 s (6000×80): {tMel * 1000:F1} ms (RTF {tMel / 60:F5})");
}

// 3. Encoder + adapter, tiny-speech, 60 s; peak memory growth.
void EncoderBench(string name, SpeechModel sm, double seconds, int reps)
{
    using var lm = new LogMelSpectrogram(device);
    using var feats = lm.Compute(Noise((int)(16000 * seconds), 3)).unsqueeze(0);
    using var len = torch.tensor(new long[] { feats.shape[1] }, device: device);
    GC.Collect();
    long before = Process.GetCurrentProcess().WorkingSet64;
    double t = Time(() =>
    {
        using var scope = NewDisposeScope();
        using var noGrad = torch.no_grad();
        sm.Forward(feats, len);
        Sync();
    }, reps);
    long after = Process.GetCurrentProcess().PeakWorkingSet64;
    Console.WriteLine($"{name} encoder+adapter on {seconds:F0} s: {t * 1000:F0} ms (RTF {t / seconds:F4}); peak RSS above the loaded model {(after - before) / 1048576.0:F0} MiB ({(after - before) / 1048576.0 / (seconds / 60):F0} MiB per minute of audio)");
}

using (var tiny = SpeechLanguageModel.Create("tiny-speech", device, ScalarType.Float32, seed: 1))
{
    EncoderBench("tiny-speech", tiny.speech_model, 60, 5);
    // A padded batch (60 s + 45 s): the masked path.
    using (var lm = new LogMelSpectrogram(device))
    {
        var (bf, bl) = lm.ComputeBatch(new[] { Noise(16000 * 60, 5), Noise(16000 * 45, 6) });
        double tb = Time(() => { using var scope = NewDisposeScope(); using var ng = torch.no_grad(); tiny.speech_model.Forward(bf, bl); Sync(); }, 3);
        Console.WriteLine($"tiny-speech encoder+adapter, padded batch 60 s + 45 s: {tb * 1000:F0} ms (RTF {tb / 105:F4})");
        bf.Dispose(); bl.Dispose();
    }
    // 4. Transcription latency (random weights, 16 new tokens) on 10 s of audio.
    string wav = Path.Combine(Path.GetTempPath(), "l3mm-bench-speech.wav");
    WriteWav(wav, Noise(16000 * 10, 4));
    var opts = new GenerationOptions { MaxNewTokens = 16, StopTokens = Array.Empty<int>() };
    tiny.Transcribe(wav, options: opts);
    var rs = Enumerable.Range(0, 5).Select(_ => tiny.Transcribe(wav, options: opts)).ToList();
    var r = rs.OrderBy(x => x.TotalSeconds).ElementAt(2);
    Console.WriteLine($"tiny-speech Transcribe 10 s WAV, 16 tokens: total {r.TotalSeconds * 1000:F0} ms (load {r.LoadSeconds * 1000:F1}, log-mel {r.FeatureSeconds * 1000:F1}, encoder {r.EncoderSeconds * 1000:F1}, prefill {r.PrefillSeconds * 1000:F1}, decode {r.DecodeSeconds * 1000:F1} ms = {r.DecodeSeconds * 1000 / Math.Max(1, r.GeneratedTokens - 1):F2} ms/token); RTF {r.RealTimeFactor:F4}");
}

// 5. Full-size encoder + adapter (1.1B parameters, random weights).
if (full)
{
    using var sm = new SpeechModel(new ConformerConfig(), new SpeechAdapterConfig(), device, ScalarType.Float32);
    sm.encoder.InitializeWeights(1);
    WeightInit.Apply(sm.adapter, 2);
    EncoderBench("full-size (1.0B encoder + 90M adapter)", sm, 10, 2);
    EncoderBench("full-size (1.0B encoder + 90M adapter)", sm, 30, 1);
}

static void WriteWav(string path, float[] s)
{
    using var w = new BinaryWriter(File.Create(path));
    w.Write("RIFF"u8); w.Write(36 + s.Length * 2); w.Write("WAVE"u8);
    w.Write("fmt "u8); w.Write(16); w.Write((short)1); w.Write((short)1); w.Write(16000); w.Write(32000); w.Write((short)2); w.Write((short)16);
    w.Write("data"u8); w.Write(s.Length * 2);
    foreach (var v in s) w.Write((short)Math.Clamp(v * 32767, -32768, 32767));
}

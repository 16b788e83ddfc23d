using System.Diagnostics;
using System.Text.Json.Nodes;
using Llama3.Multimodal.Demo;
using Llama3.Multimodal.Speech;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Training;
using Llama3.Multimodal.Video;
using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Bench.Training;

/// <summary>
/// Which side bounds a run at real input sizes: the training step rate (samples/s) of <c>vision-stage2</c> on 448-px
/// tiles (≤ 4 tiles per image), <c>speech-stage2</c> on 16 kHz audio and <c>video</c> on 8 frames of 448 px, read from
/// the loader bench's tar shards, beside the loader alone (decode + preprocess, no model) on the same shards. Two model
/// sizes: the demo shapes (tiny-vision / tiny-video encoders with their tile size set to 448 px, tiny-speech, the tiny
/// decoder) and the same encoders under the <c>llama3.2-1b</c> decoder preset (16 layers, dim 2048; frozen, as these
/// recipes keep it; the image model adds 4 gated cross-attention layers, one per 4 self-attention layers as in Llama 3.2
/// Vision). Fresh random weights, CPU f32.
/// </summary>
internal static class BottleneckBench
{
    public static void Run(int steps)
    {
        string root = Path.Combine(Path.GetTempPath(), "l3mm-bench-loader");
        LoaderBench.EnsureData(root);
        string models = Path.Combine(Path.GetTempPath(), "l3mm-bench-bottleneck-" + Guid.NewGuid().ToString("N")[..8]);
        var rows = new List<(string Case, string Model, double Step, double Loader)>();
        try
        {
            // The image-text models as folders (vision-stage2 and video start from them): 448-px tiles, demo and 1B decoders.
            var baseCfg = ConfigLoader.Load(DemoConfigs.For("vision-stage2"), null, new[] { "model.init_from=null" });
            VisionLanguageConfig small;
            using (var m = VisionRecipe.Build(baseCfg, ByteTokenizer.Instance, CPU, ScalarType.Float32)) small = m.Config;
            small = small with { Vision = small.Vision with { ImageSize = 448 } };
            var t1b = TextPresets.Get("llama3.2-1b");
            var large = small with
            {
                Text = t1b with
                {
                    NumLayers = t1b.NumLayers + 4, VocabSize = small.Text.VocabSize, ExtraEmbeddingRows = small.Text.ExtraEmbeddingRows,
                    BosTokenId = small.Text.BosTokenId, EosTokenIds = small.Text.EosTokenIds, PadTokenId = small.Text.PadTokenId, TieWordEmbeddings = false,
                },
                CrossAttentionLayers = VisionLanguageConfig.FusionSchedule(t1b.NumLayers, 4),
            };
            string smallDir = Path.Combine(models, "demo-448"), largeDir = Path.Combine(models, "llama3.2-1b-448");
            VisionLanguageModel.SaveRandom(small, smallDir, seed: 1);
            VisionLanguageModel.SaveRandom(large, largeDir, seed: 1, dtype: ScalarType.BFloat16);   // loads as f32

            var loaderData = new DataSection { Prefetch = 16, ShuffleBuffer = 64, Readers = 1 };
            var pre = new ImagePreprocessor(448, 4);
            double imageLoader = LoaderBench.Measure("loader: image 448 px, ≤ 4 tiles, shards", Path.Combine(root, "images", "shards"), 32, 8, 1, loaderData,
                (p, skip) => (JsonlManifest.ReadImageCaptions(p, skip, out int n), n), ShardRecords.ImageCaption,
                (r, _, _) => pre.Process(RecordMedia.Image(r)),
                items => { using var b = pre.Pack(items.Select(i => (IReadOnlyList<ProcessedImage>)new[] { i }).ToList()); foreach (var i in items) i.Dispose(); return b.PixelValues.numel(); });
            using var mel = new LogMelSpectrogram();
            object melLock = new();
            double audioLoader = LoaderBench.Measure("loader: audio 16 kHz → log-mel, shards", Path.Combine(root, "audio", "shards"), 24, 8, 1, loaderData,
                (p, skip) => (JsonlManifest.ReadAudioTexts(p, skip, out int n), n), ShardRecords.AudioText,
                (r, _, _) => { var s = RecordMedia.Audio(r); lock (melLock) return mel.Compute(s); },
                items => { long n = items.Sum(t => t.numel()); foreach (var t in items) t.Dispose(); return n; });
            double videoLoader = LoaderBench.Measure("loader: video 8 frames 448 px, shards", Path.Combine(root, "video", "shards"), 8, 2, 1, loaderData,
                (p, skip) => (JsonlManifest.ReadVideoCaptions(p, skip, out int n), n), ShardRecords.VideoCaption,
                (r, _, _) => { using var f = RecordMedia.Frames(r, new FrameSamplingOptions { NumFrames = 8, Width = 448, Height = 448, Resize = FrameResize.FitPad }); return f.ToNormalized(); },
                items => { long n = items.Sum(t => t.numel()); foreach (var t in items) t.Dispose(); return n; });

            // Demo shapes: micro-batches of 2; the 1B decoder: micro-batches of 1 (the rate is per sample either way).
            foreach (var (label, dir, micro) in new[] { ("demo shapes", smallDir, 2), ("llama3.2-1b decoder", largeDir, 1) })
            {
                rows.Add(("vision-stage2, 448 px, ≤ 4 tiles", label, Train("vision-stage2", Path.Combine(root, "images", "shards"), steps, micro,
                    $"model.init_from=\"{dir}\"", "vision.max_tiles=4"), imageLoader));
                rows.Add(("speech-stage2, 16 kHz", label, Train("speech-stage2", Path.Combine(root, "audio", "shards"), steps, micro,
                    "model.init_from=null", "speech.finetune.encoder_from=null", dir == smallDir ? "model.preset=\"tiny\"" : "model.preset=\"llama3.2-1b\""), audioLoader));
                rows.Add(("video, 8 frames at 448 px", label, Train("video", Path.Combine(root, "video", "shards"), steps, micro,
                    $"model.init_from=\"{dir}\"", "video.frame_cache_mb=0"), videoLoader));
            }
        }
        finally { if (Directory.Exists(models)) Directory.Delete(models, true); }

        Console.WriteLine();
        Console.WriteLine($"| case | model | training step, samples/s | loader alone, samples/s | bound by |");
        Console.WriteLine($"|---|---|---|---|---|");
        foreach (var (c, m, step, loader) in rows)
            Console.WriteLine($"| {c} | {m} | {step:F2} | {loader:F1} | {(step < loader ? $"model ({loader / step:F1}× headroom in the loader)" : $"loader (the model could take {step / loader:F1}×)")} |");
        Console.WriteLine($"peak working set: {Process.GetCurrentProcess().PeakWorkingSet64 / (1 << 20)} MiB");
    }

    /// <summary>Trains <paramref name="steps"/> steps of <paramref name="micro"/> samples on <paramref name="data"/>; samples/s over steps 2…N.</summary>
    static double Train(string recipe, string data, int steps, int micro, params string[] extra)
    {
        string outDir = Path.Combine(Path.GetTempPath(), "l3mm-bench-run-" + Guid.NewGuid().ToString("N")[..8]);
        var sets = new[]
        {
            $"data.train=\"{data}\"", "data.eval=null", "data.readers=1", "data.shuffle_buffer=16", $"optim.total_steps={steps}", "optim.warmup_steps=1",
            "train.save_every=0", "train.eval_every=0", "train.log_every=1", $"batch.micro={micro}", $"batch.global={micro}",
        }.Concat(extra).ToArray();
        var cfg = ConfigLoader.Load(DemoConfigs.For(recipe), null, sets);
        var sw = Stopwatch.StartNew();
        using (var t = new Trainer(RecipeRegistry.Create(recipe), cfg, outDir, new TrainerOptions { Progress = null, Plot = false, TensorBoard = false }))
        {
            long parameters = t.Recipe.Model.parameters().Sum(p => p.numel());
            t.Run();
            var lines = File.ReadLines(Path.Combine(outDir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).Where(o => o["loss"] is not null).ToList();
            double D(JsonObject o, string k) => o[k]!.GetValue<double>();
            double secs = D(lines[^1], "elapsed_s") - D(lines[0], "elapsed_s"), samples = D(lines[^1], "samples") - D(lines[0], "samples");
            double sps = samples / secs;
            Console.WriteLine($"train: {recipe,-14} {parameters / 1e6,8:F1} M parameters  {sps,7:F2} samples/s  ({samples} samples in {secs:F1} s after a first step; " +
                $"{sw.Elapsed.TotalSeconds:F0} s with set-up)  loss {D(lines[0], "loss"):F3} → {D(lines[^1], "loss"):F3}");
            Directory.Delete(outDir, true);
            return sps;
        }
    }
}

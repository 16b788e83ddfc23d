using System.Diagnostics;
using System.Formats.Tar;
using System.Text;
using System.Text.Json.Nodes;
using Llama3.Multimodal.Speech;
using Llama3.Multimodal.Training;
using Llama3.Multimodal.Video;
using Llama3.Multimodal.Vision;
using Parquet;
using Parquet.Schema;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Bench.Training;

/// <summary>
/// The data loader alone (no model): decode + preprocess + collate in samples/s, for images at 448-px tiles (≤ 4 tiles),
/// audio at 16 kHz to 80-bin log-mel features, and video at 8 frames of 448 × 448, each from a JSONL manifest of loose
/// files, from WebDataset tar shards and from Parquet (HF struct columns), through <see cref="SampleStreams"/> as the recipes
/// use it.
/// </summary>
internal static class LoaderBench
{
    const int Images = 96, Utterances = 48, Clips = 16, Micro = 8, VideoMicro = 2;

    public static void Run(int passes)
    {
        string root = Path.Combine(Path.GetTempPath(), "l3mm-bench-loader");
        EnsureData(root);
        var data = new DataSection { Prefetch = 16, ShuffleBuffer = 64, Readers = 1 };
        Console.WriteLine($"loader: {Math.Min(4, Environment.ProcessorCount)} decode workers (data.workers default); " +
            $"micro-batch {Micro} ({VideoMicro} for video); {passes} pass(es) over each set after one warm-up micro-batch");
        var pre = new ImagePreprocessor(448, 4);
        using var mel = new LogMelSpectrogram();
        object melLock = new();
        foreach (var kind in new[] { "manifest.jsonl", "shards", "parquet" })
        {
            Measure($"image 448 px, ≤ 4 tiles  {kind,-14}", Path.Combine(root, "images", kind), Images, Micro, passes, data,
                (p, skip) => (JsonlManifest.ReadImageCaptions(p, skip, out int n), n), ShardRecords.ImageCaption,
                (r, _, _) => pre.Process(RecordMedia.Image(r)),
                items => { using var b = pre.Pack(items.Select(i => (IReadOnlyList<ProcessedImage>)new[] { i }).ToList()); foreach (var i in items) i.Dispose(); return b.PixelValues.numel(); });
            Measure($"audio 16 kHz → log-mel   {kind,-14}", Path.Combine(root, "audio", kind), Utterances, Micro, passes, data,
                (p, skip) => (JsonlManifest.ReadAudioTexts(p, skip, out int n), n), ShardRecords.AudioText,
                (r, _, _) => { var s = RecordMedia.Audio(r); lock (melLock) return mel.Compute(s); },
                items => { long n = items.Sum(t => t.numel()); foreach (var t in items) t.Dispose(); return n; });
            Measure($"video 8 frames 448 px    {kind,-14}", Path.Combine(root, "video", kind), Clips, VideoMicro, passes, data,
                (p, skip) => (JsonlManifest.ReadVideoCaptions(p, skip, out int n), n), ShardRecords.VideoCaption,
                (r, _, _) => { using var f = RecordMedia.Frames(r, new FrameSamplingOptions { NumFrames = 8, Width = 448, Height = 448, Resize = FrameResize.FitPad }); return f.ToNormalized(); },
                items => { long n = items.Sum(t => t.numel()); foreach (var t in items) t.Dispose(); return n; });
        }
    }

    /// <summary>Makes the loader's data set under <paramref name="root"/> unless it is there.</summary>
    public static void EnsureData(string root)
    {
        if (!File.Exists(Path.Combine(root, ".done"))) Make(root);
    }

    /// <summary>Streams <paramref name="passes"/> × <paramref name="count"/> samples after a warm-up micro-batch; prints and returns samples/s.</summary>
    public static double Measure<TRecord, TItem>(string label, string source, int count, int micro, int passes, DataSection data,
        Func<string, bool, (List<TRecord>, int)> manifest, Func<ShardSample, DataSection, TRecord> fromShard,
        Func<TRecord, long, long, TItem> prepare, Func<List<TItem>, long> consume)
    {
        long values = 0;
        using var stream = SampleStreams.Open(source, data, micro, seed: 1, shuffle: true, manifest, fromShard, prepare,
            (items, _, end) => { values += consume(items); return new MicroBatch { End = end, Samples = items.Count }; });
        stream.Next(0).Dispose();                                             // warm-up: first decodes, thread start
        int batches = Math.Max(1, passes * count / micro);
        var sw = Stopwatch.StartNew();
        long samples = 0;
        for (int i = 0; i < batches; i++) { using var b = stream.Next(0); samples += b.Samples; }
        double s = sw.Elapsed.TotalSeconds;
        Console.WriteLine($"{label} {samples / s,9:F1} samples/s  ({samples} samples in {s:F2} s)");
        return samples / s;
    }

    static void Make(string root)
    {
        if (Directory.Exists(root)) Directory.Delete(root, true);
        var rng = new Random(5);
        // Images: JPEGs of 448–1344 px sides (1 to 4 tiles at 448).
        var img = new List<(string Name, byte[] Data, string Text)>();
        for (int i = 0; i < Images; i++)
        {
            int w = 448 * (1 + i % 3) - rng.Next(0, 100), h = 448 * (1 + (i / 3) % 2) - rng.Next(0, 100);
            using var bmp = new SKBitmap(w, h);
            using (var c = new SKCanvas(bmp))
            {
                c.Clear(new SKColor((byte)rng.Next(256), (byte)rng.Next(256), (byte)rng.Next(256)));
                for (int k = 0; k < 12; k++)
                {
                    using var paint = new SKPaint { Color = new SKColor((byte)rng.Next(256), (byte)rng.Next(256), (byte)rng.Next(256)) };
                    c.DrawCircle(rng.Next(w), rng.Next(h), rng.Next(10, 120), paint);
                }
            }
            using var enc = bmp.Encode(SKEncodedImageFormat.Jpeg, 90);
            img.Add(($"{i:D6}.jpg", enc.ToArray(), $"picture number {i}"));
        }
        Write(Path.Combine(root, "images"), img, "image", "caption", "jpg");
        // Audio: espeak-ng speech encoded as FLAC at 16 kHz.
        var aud = new List<(string, byte[], string)>();
        for (int i = 0; i < Utterances; i++)
        {
            string text = $"this is utterance number {i} of the loader benchmark", wav = Path.Combine(Path.GetTempPath(), $"l3mm-lb-{i}.wav"), flac = wav + ".flac";
            Tool("espeak-ng", "-s", "170", "-w", wav, text);
            Tool("ffmpeg", "-v", "error", "-y", "-i", wav, "-ar", "16000", "-ac", "1", flac);
            aud.Add(($"{i:D6}.flac", File.ReadAllBytes(flac), text));
            File.Delete(wav); File.Delete(flac);
        }
        Write(Path.Combine(root, "audio"), aud, "audio", "text", "flac");
        // Video: 4 s H.264 clips at 25 fps, 640 × 360.
        var vid = new List<(string, byte[], string)>();
        for (int i = 0; i < Clips; i++)
        {
            string mp4 = Path.Combine(Path.GetTempPath(), $"l3mm-lb-{i}.mp4");
            Tool("ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", $"testsrc2=size=640x360:rate=25", "-t", "4", "-vf", $"hue=h={i * 20}", "-pix_fmt", "yuv420p", mp4);
            vid.Add(($"{i:D6}.mp4", File.ReadAllBytes(mp4), $"test pattern {i}"));
            File.Delete(mp4);
        }
        Write(Path.Combine(root, "video"), vid, "video", "caption", "mp4");
        File.WriteAllText(Path.Combine(root, ".done"), "");
    }

    /// <summary>The same samples as loose files + manifest.jsonl, 4 tar shards, and 2 Parquet files of 2 row groups.</summary>
    static void Write(string dir, List<(string Name, byte[] Data, string Text)> items, string mediaField, string textField, string ext)
    {
        Directory.CreateDirectory(Path.Combine(dir, "files"));
        var manifest = new StringBuilder();
        foreach (var (name, bytes, text) in items)
        {
            File.WriteAllBytes(Path.Combine(dir, "files", name), bytes);
            manifest.Append(new JsonObject { [mediaField] = "files/" + name, [textField] = text }.ToJsonString()).Append('\n');
        }
        File.WriteAllText(Path.Combine(dir, "manifest.jsonl"), manifest.ToString());
        Directory.CreateDirectory(Path.Combine(dir, "shards"));
        var perShard = items.Chunk((items.Count + 3) / 4).ToList();
        for (int s = 0; s < perShard.Count; s++)
        {
            using var f = File.Create(Path.Combine(dir, "shards", $"shard-{s:D6}.tar"));
            using var w = new TarWriter(f, TarEntryFormat.Pax);
            foreach (var (name, bytes, text) in perShard[s])
            {
                string key = Path.GetFileNameWithoutExtension(name);
                w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, $"{key}.{ext}") { DataStream = new MemoryStream(bytes) });
                w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, $"{key}.txt") { DataStream = new MemoryStream(Encoding.UTF8.GetBytes(text)) });
            }
        }
        Directory.CreateDirectory(Path.Combine(dir, "parquet"));
        var files = items.Chunk((items.Count + 1) / 2).ToList();
        for (int p = 0; p < files.Count; p++)
        {
            var bytesField = new DataField<byte[]>("bytes");
            var pathField = new DataField<string>("path");
            var textCol = new DataField<string>(textField);
            var schema = new ParquetSchema(new StructField(mediaField, bytesField, pathField), textCol);
            using var f = File.Create(Path.Combine(dir, "parquet", $"train-{p:D5}-of-{files.Count:D5}.parquet"));
            var w = ParquetWriter.CreateAsync(schema, f).GetAwaiter().GetResult();
            try
            {
                foreach (var group in files[p].Chunk((files[p].Length + 1) / 2))
                {
                    using var rg = w.CreateRowGroup();
                    rg.WriteAsync(bytesField, group.Select(g => g.Data).ToArray()).GetAwaiter().GetResult();
                    rg.WriteAsync(pathField, group.Select(g => g.Name).ToArray()).GetAwaiter().GetResult();
                    rg.WriteAsync(textCol, group.Select(g => g.Text).ToArray()).GetAwaiter().GetResult();
                }
            }
            finally { w.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        }
    }

    static void Tool(string exe, params string[] args)
    {
        var psi = new ProcessStartInfo(exe) { UseShellExecute = false, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {exe}");
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{exe} failed: {err}");
    }
}

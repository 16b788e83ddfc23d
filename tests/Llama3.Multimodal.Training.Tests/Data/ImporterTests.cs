using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Llama3.Multimodal.Training.Tests.Data;

/// <summary>
/// <c>mm-train import</c> on tiny corpora in the published layouts, training on shards and Parquet (resume included),
/// and the documented flow: import → <c>speech-stage2</c> → <c>eval asr</c>.
/// </summary>
public class ImporterTests
{
    static readonly Lazy<string> Libri = new(() => Corpora.LibriSpeech(TestRuns.TempDir()));
    static readonly Lazy<string> Cv = new(() => Corpora.CommonVoice(TestRuns.TempDir()));
    static readonly Lazy<string> Coco = new(() => Corpora.Coco(TestRuns.TempDir()));

    internal static (int Code, string Out, string Err) Cli(params string[] args) =>
        Llama3.Multimodal.Tests.Shared.ConsoleCapture.Run(Tools.MmTrain.Program.Main, args);

    static List<JsonObject> Lines(string manifest) => File.ReadLines(manifest).Select(l => (JsonObject)JsonNode.Parse(l)!).ToList();

    [Fact]
    public void LibriSpeechBecomesAnAsrManifestOrShards()
    {
        string outDir = TestRuns.TempDir();
        var r = Cli("import", "librispeech", Libri.Value, "--out", outDir);
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("imported 6 records", r.Out);
        var lines = Lines(Path.Combine(outDir, "manifest.jsonl"));
        Assert.Equal("THE RED BALL", lines[0]["text"]!.GetValue<string>());
        Assert.Equal("English", lines[0]["language"]!.GetValue<string>());
        Assert.Equal("asr", lines[0]["task"]!.GetValue<string>());
        var records = JsonlManifest.ReadAudioTexts(Path.Combine(outDir, "manifest.jsonl"), false, out _);
        Assert.Equal(Path.Combine(Libri.Value, "19", "198", "19-198-0000.flac"), records[0].Audio);

        string shards = TestRuns.TempDir();
        r = Cli("import", "librispeech", Libri.Value, "--out", shards, "--shards", "--shard-size", "4");
        Assert.True(r.Code == 0, r.Err);
        var (kind, files) = DataSources.Resolve(Path.Combine(shards, "shard-{000000..000001}.tar"));
        Assert.Equal(DataSourceKind.Tar, kind);
        var samples = DataSources.Units(kind, files).SelectMany(u => u.Read(0, default)).ToList();
        Assert.Equal(6, samples.Count);
        var rec = ShardRecords.AudioText(samples[1], new DataSection());
        Assert.Equal(("A BLUE CUP", "English", "asr"), (rec.Text, rec.Language, rec.Task));
        Assert.Equal(File.ReadAllBytes(records[1].Audio), rec.Data);
        Assert.Equal(Speech.AudioLoader.Load(records[1].Audio), Speech.AudioLoader.Load(rec.Data!, rec.Audio));

        // A transcript line without its audio is skipped and named.
        string broken = TestRuns.TempDir();
        CopyDir(Libri.Value, broken);
        File.Delete(Path.Combine(broken, "26", "199", "26-199-0001.flac"));
        r = Cli("import", "librispeech", broken, "--out", TestRuns.TempDir());
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("imported 5 records", r.Out);
        Assert.Contains("26-199-0001.flac not found", r.Out);
        Assert.Equal(2, Cli("import", "librispeech", TestRuns.TempDir(), "--out", TestRuns.TempDir()).Code);
    }

    static void CopyDir(string from, string to)
    {
        foreach (var f in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            string t = Path.Combine(to, Path.GetRelativePath(from, f));
            Directory.CreateDirectory(Path.GetDirectoryName(t)!);
            File.Copy(f, t);
        }
    }

    [Fact]
    public void CommonVoiceTsvAndMp3ClipsBecomeAnAsrManifest()
    {
        string outDir = TestRuns.TempDir();
        var r = Cli("import", "common-voice", Cv.Value, "--out", outDir);
        Assert.True(r.Code == 0, r.Err);
        var records = JsonlManifest.ReadAudioTexts(Path.Combine(outDir, "manifest.jsonl"), false, out _);
        Assert.Equal(4, records.Count);
        Assert.Equal(("The red ball.", "English", "asr"), (records[0].Text, records[0].Language, records[0].Task));
        Assert.EndsWith(Path.Combine("clips", "common_voice_en_39000000.mp3"), records[0].Audio);
        Assert.True(Speech.AudioLoader.Load(records[0].Audio).Length > 8000);
        r = Cli("import", "common-voice", Cv.Value, "--out", TestRuns.TempDir(), "--split", "validated", "--language", "Englisch");
        Assert.True(r.Code == 0, r.Err);
        var e = Cli("import", "common-voice", Cv.Value, "--out", TestRuns.TempDir(), "--split", "dev");
        Assert.Equal(2, e.Code);
        Assert.Contains("no records", e.Err);
    }

    [Fact]
    public void CocoCaptionsBecomeACaptionManifestOrShards()
    {
        string outDir = TestRuns.TempDir();
        var r = Cli("import", "coco", Coco.Value, "--out", outDir, "--split", "val2017");
        Assert.True(r.Code == 0, r.Err);
        var records = JsonlManifest.ReadImageCaptions(Path.Combine(outDir, "manifest.jsonl"), false, out _);
        Assert.Equal(8, records.Count);
        Assert.Equal("the red ball on a grey wall", records[0].Caption);
        Assert.EndsWith(Path.Combine("val2017", "000000000139.jpg"), records[0].Image);
        r = Cli("import", "coco", Coco.Value, "--out", outDir, "--split", "val2017", "--first-caption-only");
        Assert.Equal(4, JsonlManifest.ReadImageCaptions(Path.Combine(outDir, "manifest.jsonl"), false, out _).Count);
        string shards = TestRuns.TempDir();
        r = Cli("import", "coco", Coco.Value, "--out", shards, "--split", "val2017", "--shards", "--shard-size", "3");
        Assert.True(r.Code == 0, r.Err);
        var units = DataSources.Units(DataSourceKind.Tar, DataSources.Resolve(shards).Files);
        Assert.Equal(3, units.Count);
        var s = units[0].Read(0, default).First();
        Assert.Equal(new[] { "jpg", "txt" }, s.Members.Keys.Order());
        var rec = ShardRecords.ImageCaption(s, new DataSection());
        Assert.Equal(records[0].Caption, rec.Caption);
        var a = Vision.ImageLoader.Decode(rec.Data!, rec.Image);
        Assert.Equal((48, 48), (a.Width, a.Height));
        Assert.Equal(2, Cli("import", "coco", Coco.Value, "--out", TestRuns.TempDir()).Code);   // no train2017 annotations
    }

    static TrainConfig SpeechConfig(string train, long steps, params string[] sets) =>
        Recipes.MediaTestData.Config("speech-stage2", steps, new[] { $"data.train=\"{train}\"", "data.shuffle=true", "data.shuffle_buffer=3", "batch.global=4" }.Concat(sets).ToArray());

    [Fact]
    public void SpeechStage2TrainsOnShardsAndResumesBitExactly()
    {
        string shards = TestRuns.TempDir();
        Assert.Equal(0, Cli("import", "librispeech", Libri.Value, "--out", shards, "--shards", "--shard-size", "2").Code);
        string[] sets = { "data.readers=2", "train.save_every=0" };
        string full = TestRuns.TempDir(), split = TestRuns.TempDir();
        Dictionary<string, float[]> wFull;
        using (var t = new Trainer(RecipeRegistry.Create("speech-stage2"), SpeechConfig(shards, 5, sets), full, TestRuns.Quiet))
        {
            var r = t.Run();
            Assert.Equal(5, r.Steps);
            wFull = TestRuns.Weights(t.Recipe.Model);
        }
        using (var t = new Trainer(RecipeRegistry.Create("speech-stage2"), SpeechConfig(shards, 5, sets.Append("train.max_steps=2").ToArray()), split, TestRuns.Quiet))
            Assert.Equal(2, t.Run().Steps);
        var state = JsonNode.Parse(File.ReadAllText(Path.Combine(split, "checkpoints", "step-00000002", "trainer_state.json")))!;
        Assert.Equal(2 * ShardBatchSource<int, int>.StateWidth, state["data_cursor"]!["readers"]!.AsArray().Count);
        using (var t = new Trainer(RecipeRegistry.Create("speech-stage2"), SpeechConfig(shards, 5, sets), split, TestRuns.Quiet))
        {
            Assert.Equal(5, t.Run(resume: true).Steps);
            var w = TestRuns.Weights(t.Recipe.Model);
            foreach (var (k, v) in wFull) Assert.True(v.AsSpan().SequenceEqual(w[k]), $"weight {k} differs after resume");
        }
    }

    static string WorkerConfig(string dir, string shards, long steps, long? maxSteps = null)
    {
        string path = Path.Combine(dir, $"cfg-{steps}-{maxSteps}.json");
        File.WriteAllText(path, $$"""
            {
              "recipe": "speech-stage2", "tokenizer": "bytes", "seed": 3,
              "model": { "preset": "tiny", "init_from": null, "hidden_size": 32, "intermediate_size": 64, "max_position_embeddings": 512 },
              "speech": { "preset": "tiny-speech", "finetune": { "encoder_from": null } },
              "data": { "train": "{{shards}}", "seq_len": 400, "prefetch": 4, "readers": 2, "shuffle_buffer": 3 },
              "optim": { "lr": 1e-3, "warmup_steps": 1, "total_steps": {{steps}}, "schedule": "constant" },
              "batch": { "unit": "samples", "global": 4, "micro": 2 },
              "train": { "save_every": 0, "eval_every": 0, "max_steps": {{maxSteps?.ToString() ?? "null"}} }
            }
            """);
        return path;
    }

    [Fact]
    public void TwoRanksReadDistinctShardsAndResumeOnOneProcess()
    {
        string shards = TestRuns.TempDir(), work = TestRuns.TempDir();
        Assert.Equal(0, Cli("import", "librispeech", Libri.Value, "--out", shards, "--shards", "--shard-size", "2").Code);
        string worker = Path.Combine(AppContext.BaseDirectory, "Llama3.Multimodal.Training.MpiWorker.dll");
        string one = Path.Combine(work, "one"), two = Path.Combine(work, "two");
        // One process, readers 2, four steps.
        var r1 = Distributed.MpiTests.Run(worker, $"recipe speech-stage2 {WorkerConfig(work, shards, 4)} {one}", timeoutSeconds: 300, mpi: false);
        Assert.True(r1.Code == 0, r1.Out);
        // Two ranks, two steps: each rank reads one reader's shards; then one process resumes for two more.
        var r2 = Distributed.MpiTests.Run(worker, $"recipe speech-stage2 {WorkerConfig(work, shards, 4, 2)} {two}", timeoutSeconds: 300);
        Assert.True(r2.Code == 0, r2.Out);
        string Cursor(string dir, int step) => JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "checkpoints", $"step-{step:D8}", "trainer_state.json")))!["data_cursor"]!.ToJsonString();
        var r3 = Distributed.MpiTests.Run(worker, $"recipe speech-stage2 {WorkerConfig(work, shards, 4)} {two} resume", timeoutSeconds: 300, mpi: false);
        Assert.True(r3.Code == 0, r3.Out);
        // The data stream is the same: equal cursors and sample counts; the weights equal up to the summation order.
        Assert.Equal(Cursor(one, 4), Cursor(two, 4));
        string Samples(string dir) => JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "checkpoints", "step-00000004", "trainer_state.json")))!["samples_seen"]!.ToJsonString();
        Assert.Equal(Samples(one), Samples(two));
        using var a = Text.SafeTensorsFile.Open(Path.Combine(one, "checkpoints", "step-00000004", "model.safetensors"));
        using var b = Text.SafeTensorsFile.Open(Path.Combine(two, "checkpoints", "step-00000004", "model.safetensors"));
        int moved = 0;
        foreach (var name in a.Entries.Keys)
        {
            using var x = a.Read(name); using var y = b.Read(name);
            float diff = (x - y).abs().max().item<float>();
            Assert.True(diff < 1e-4f, $"{name}: {diff}");
            if (name.StartsWith("speech_model.adapter", StringComparison.Ordinal)) moved++;
        }
        Assert.True(moved > 0);
    }

    [Fact]
    public void VisionStage1TrainsOnParquetAndVideoReadsClipsFromShards()
    {
        string dir = TestRuns.TempDir();
        var rows = Enumerable.Range(0, 4).Select(i => (Corpora.Image(i, 64), $"{i}.png", $"a {Corpora.Sentences[i]}")).ToList();
        string pq = Corpora.Parquet(Path.Combine(dir, "train-00000-of-00001.parquet"), "image", "caption", rows, rowGroups: 2);
        var cfg = Recipes.MediaTestData.Config("vision-stage1", 2, $"data.train=\"{pq}\"", "data.readers=1", "batch.global=2");
        using (var t = new Trainer(RecipeRegistry.Create("vision-stage1"), cfg, TestRuns.TempDir(), TestRuns.Quiet))
        {
            var r = t.Run();
            Assert.Equal(2, r.Steps);
            Assert.True(r.History.All(h => double.IsFinite(h.Loss)));
        }
        // A clip whose index sits at the end (no faststart) decodes from shard bytes exactly as from its file.
        string clip = Path.Combine(dir, "clip.mp4");
        var psi = new ProcessStartInfo("ffmpeg", $"-v error -y -f lavfi -i testsrc=size=64x48:rate=8 -t 1 -pix_fmt yuv420p {clip}") { UseShellExecute = false };
        using (var p = Process.Start(psi)!) { p.WaitForExit(); Assert.Equal(0, p.ExitCode); }
        string tar = Corpora.Tar(Path.Combine(dir, "video.tar"), new (string, byte[])[] { ("k.mp4", File.ReadAllBytes(clip)), ("k.txt", "a test pattern"u8.ToArray()) });
        var rec = ShardRecords.VideoCaption(new TarShard(tar).Read(0, default).Single(), new DataSection());
        Assert.False(rec.Still);
        var opts = new Video.FrameSamplingOptions { NumFrames = 4, Width = 32, Height = 32 };
        using var fromShard = RecordMedia.Frames(rec, opts);
        using var fromFile = Video.VideoFrameReader.Read(clip, opts);
        Assert.Equal(fromFile.Count, fromShard.Count);
        for (int i = 0; i < fromFile.Count; i++) Assert.True(fromFile.Pixels[i].equal(fromShard.Pixels[i]).all().item<bool>(), $"frame {i}");
    }

    [Fact]
    public void ImportThenSpeechStage2ThenEvalRunsFromTheCommandLine()
    {
        // The flow docs/TRAINING.md shows, on the tiny LibriSpeech corpus.
        string work = TestRuns.TempDir(), data = Path.Combine(work, "librispeech"), run = Path.Combine(work, "run");
        var imp = Cli("import", "librispeech", Libri.Value, "--out", data);
        Assert.True(imp.Code == 0, imp.Err);
        string config = Path.Combine(work, "speech-stage2.json");
        File.WriteAllText(config, """
            {
              "recipe": "speech-stage2",
              "tokenizer": "bytes",
              "model": { "preset": "tiny", "init_from": null, "hidden_size": 32, "intermediate_size": 64, "max_position_embeddings": 512 },
              "speech": { "preset": "tiny-speech", "finetune": { "encoder_from": null } },
              "data": { "train": "librispeech/manifest.jsonl", "eval": "librispeech/manifest.jsonl", "seq_len": 400, "prefetch": 4 },
              "optim": { "lr": 1e-3, "warmup_steps": 1, "total_steps": 2, "schedule": "constant" },
              "batch": { "unit": "samples", "global": 2, "micro": 2 },
              "train": { "save_every": 0, "log_every": 1, "eval_every": 0 }
            }
            """);
        var tr = Cli("speech-stage2", "--config", config, "--out", run);
        Assert.True(tr.Code == 0, tr.Err + tr.Out);
        Assert.Contains("done: 2 steps", tr.Out);
        var ev = Cli("eval", "asr", "--model", Path.Combine(run, "checkpoints", "step-00000002"), "--data", Path.Combine(data, "manifest.jsonl"), "--limit", "2", "--max-new-tokens", "8");
        Assert.True(ev.Code == 0, ev.Err);
        var json = JsonNode.Parse(ev.Out)!;
        Assert.Equal(2, json["count"]!.GetValue<int>());
        Assert.True(json["wer"]!.GetValue<double>() >= 0);
        // The same records from shards score the same.
        string shards = Path.Combine(work, "shards");
        Assert.Equal(0, Cli("import", "librispeech", Libri.Value, "--out", shards, "--shards", "--shard-size", "4").Code);
        var evs = Cli("eval", "asr", "--model", Path.Combine(run, "checkpoints", "step-00000002"), "--data", shards, "--limit", "2", "--max-new-tokens", "8");
        Assert.True(evs.Code == 0, evs.Err);
        Assert.Equal(json["wer"]!.GetValue<double>(), JsonNode.Parse(evs.Out)!["wer"]!.GetValue<double>());
    }
}

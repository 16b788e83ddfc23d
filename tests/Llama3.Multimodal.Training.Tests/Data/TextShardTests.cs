using System.Text;
using System.Text.Json.Nodes;
using Parquet;
using Parquet.Schema;

namespace Llama3.Multimodal.Training.Tests.Data;

/// <summary>
/// The text recipes and <c>mm-train eval caption|video</c> read tar shards and Parquet through the same data sources as
/// the media recipes; with shuffling off, a source in shards or Parquet trains exactly as the manifest it was made from.
/// </summary>
public class TextShardTests
{
    static List<JsonObject> Lines(string manifest) =>
        File.ReadLines(manifest).Where(l => l.Trim().Length > 0).Select(l => (JsonObject)JsonNode.Parse(l)!).ToList();

    /// <summary>The records as WebDataset shards of <paramref name="perShard"/> samples, one member per record made by <paramref name="members"/>.</summary>
    static string Shards(string dir, IReadOnlyList<JsonObject> records, int perShard, Func<JsonObject, IEnumerable<(string Ext, string Text)>> members)
    {
        Directory.CreateDirectory(dir);
        var chunks = records.Chunk(perShard).ToList();
        for (int s = 0; s < chunks.Count; s++)
            Corpora.Tar(Path.Combine(dir, $"train-{s:D6}.tar"), chunks[s].SelectMany((r, i) =>
                members(r).Select(m => ($"{s:D2}{i:D4}.{m.Ext}", Encoding.UTF8.GetBytes(m.Text)))).ToList());
        return Path.Combine(dir, $"train-{{000000..{chunks.Count - 1:D6}}}.tar");
    }

    /// <summary>A Parquet file of string columns (null = missing), <paramref name="rowGroups"/> row groups.</summary>
    static string Parquet(string path, string[] columns, IReadOnlyList<string?[]> rows, int rowGroups)
    {
        var fields = columns.Select(c => new DataField<string>(c)).ToArray();
        using var f = File.Create(path);
        var w = ParquetWriter.CreateAsync(new ParquetSchema(fields), f).GetAwaiter().GetResult();
        try
        {
            foreach (var chunk in rows.Chunk((rows.Count + rowGroups - 1) / rowGroups))
            {
                using var rg = w.CreateRowGroup();
                for (int c = 0; c < columns.Length; c++) rg.WriteAsync(fields[c], chunk.Select(r => r[c]).ToArray()).GetAwaiter().GetResult();
            }
        }
        finally { w.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        return path;
    }

    /// <summary>Dialogs as HF exports chat data: a <c>messages</c> column of list&lt;struct&lt;content, role&gt;&gt;.</summary>
    static string HfChatParquet(string path, IReadOnlyList<JsonObject> dialogs)
    {
        var schema = new ParquetSchema(new ListField("messages", new StructField("element", new DataField<string>("content"), new DataField<string>("role"))));
        var rows = dialogs.Select(d => (IDictionary<string, object?>)new Dictionary<string, object?>
        {
            ["messages"] = d["messages"]!.AsArray().Select(m => (IDictionary<string, object?>)new Dictionary<string, object?>
            {
                ["content"] = m!["content"]!.GetValue<string>(), ["role"] = m["role"]!.GetValue<string>(),
            }).ToList(),
        }).ToList();
        using var f = File.Create(path);
        global::Parquet.Serialization.ParquetSerializer.SerializeUntypedAsync(rows, schema, f).GetAwaiter().GetResult();
        return path;
    }

    static Dictionary<string, float[]> Train(string recipe, string data, int steps, params string[] sets)
    {
        var all = new[] { $"data.train=\"{data}\"", "data.shuffle=false", "data.readers=1", "data.shuffle_buffer=1", $"optim.total_steps={steps}",
            "optim.warmup_steps=1", "train.save_every=0", "train.eval_every=0" }.Concat(sets).ToArray();
        using var t = new Trainer(RecipeRegistry.Create(recipe), TestRuns.Config(recipe, all), TestRuns.TempDir(), TestRuns.Quiet);
        var r = t.Run();
        Assert.Equal(steps, r.Steps);
        Assert.True(r.History.All(h => double.IsFinite(h.Loss)));
        return TestRuns.Weights(t.Recipe.Model);
    }

    static void Same(Dictionary<string, float[]> a, Dictionary<string, float[]> b, string what)
    {
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var (k, v) in a) Assert.True(v.AsSpan().SequenceEqual(b[k]), $"{what}: weight {k} differs");
    }

    [Fact]
    public void TextPretrainPacksShardsAndParquetExactlyAsTheManifest()
    {
        string dir = TestRuns.TempDir(), manifest = Path.Combine(TestRuns.DataDir, "text.jsonl");
        var docs = Lines(manifest).Take(60).ToList();
        string small = Path.Combine(dir, "text.jsonl");
        File.WriteAllLines(small, docs.Select(d => d.ToJsonString()));
        var expected = Train("text-pretrain", small, 3);
        string shards = Shards(dir, docs, 16, d => new[] { ("txt", d["text"]!.GetValue<string>()) });
        Same(expected, Train("text-pretrain", shards, 3), "tar shards");
        string pq = Parquet(Path.Combine(dir, "text.parquet"), new[] { "id", "body" }, docs.Select((d, i) => new string?[] { $"doc{i}", d["text"]!.GetValue<string>() }).ToList(), 3);
        Same(expected, Train("text-pretrain", pq, 3, "data.text_column=body"), "Parquet");
    }

    [Fact]
    public void SftDpoAndRewardModelTrainOnShardsAndParquetExactlyAsOnTheManifest()
    {
        string dir = TestRuns.TempDir();
        var dialogs = Lines(Path.Combine(TestRuns.DataDir, "chat.jsonl")).Take(12).ToList();
        string chat = Path.Combine(dir, "chat.jsonl");
        File.WriteAllLines(chat, dialogs.Select(d => d.ToJsonString()));
        var sft = Train("sft", chat, 2);
        // WebDataset: each dialog as a json member; Parquet: the messages as a JSON string column.
        Same(sft, Train("sft", Shards(Path.Combine(dir, "sft"), dialogs, 5, d => new[] { ("json", d.ToJsonString()) }), 2), "sft on shards");
        string sftPq = Parquet(Path.Combine(dir, "chat.parquet"), new[] { "messages" }, dialogs.Select(d => new string?[] { d["messages"]!.ToJsonString() }).ToList(), 2);
        Same(sft, Train("sft", sftPq, 2), "sft on Parquet");
        // As HF exports chat data: messages as list<struct<content, role>>.
        string hfPq = HfChatParquet(Path.Combine(dir, "chat-hf.parquet"), dialogs);
        Same(sft, Train("sft", hfPq, 2), "sft on HF-layout Parquet");

        var pairs = Lines(Path.Combine(TestRuns.DataDir, "pairs.jsonl")).Take(12).ToList();
        Assert.Contains(pairs, p => p.ContainsKey("edited"));
        string pairsFile = Path.Combine(dir, "pairs.jsonl");
        File.WriteAllLines(pairsFile, pairs.Select(p => p.ToJsonString()));
        string? S(JsonObject p, string k) => p[k] is JsonValue v ? v.GetValue<string>() : p[k]?.ToJsonString();
        string pairsPq = Parquet(Path.Combine(dir, "pairs.parquet"), new[] { "prompt", "chosen", "rejected", "edited" },
            pairs.Select(p => new[] { S(p, "prompt"), S(p, "chosen"), S(p, "rejected"), S(p, "edited") }).ToList(), 3);
        string pairsTar = Shards(Path.Combine(dir, "pairs"), pairs, 4, p => new[] { ("json", p.ToJsonString()) });
        foreach (var recipe in new[] { "dpo", "reward-model" })
        {
            var expected = Train(recipe, pairsFile, 2);
            Same(expected, Train(recipe, pairsPq, 2), $"{recipe} on Parquet");
            Same(expected, Train(recipe, pairsTar, 2), $"{recipe} on shards");
        }

        // A sample without what the recipe needs names its shard and key.
        string bad = Corpora.Tar(Path.Combine(dir, "bad.tar"), new (string, byte[])[] { ("k1.txt", "no messages here"u8.ToArray()) });
        var e = Assert.ThrowsAny<Exception>(() => Train("sft", bad, 1));
        Assert.Contains("bad.tar, key k1", e.ToString());
    }

    [Fact]
    public void TextPretrainOnShardsResumesBitExactly()
    {
        string dir = TestRuns.TempDir();
        var docs = Lines(Path.Combine(TestRuns.DataDir, "text.jsonl")).Take(40).ToList();
        string shards = Shards(dir, docs, 7, d => new[] { ("txt", d["text"]!.GetValue<string>()) });
        string[] sets = { $"data.train=\"{shards}\"", "data.readers=2", "data.shuffle_buffer=3", "optim.total_steps=6", "optim.warmup_steps=2",
            "train.save_every=0", "train.eval_every=0", "batch.global=128" };
        string full = TestRuns.TempDir(), split = TestRuns.TempDir();
        Dictionary<string, float[]> expected;
        using (var t = new Trainer(new TextPretrainRecipe(), TestRuns.Config("text-pretrain", sets), full, TestRuns.Quiet))
        {
            t.Run();
            expected = TestRuns.Weights(t.Recipe.Model);
        }
        using (var t = new Trainer(new TextPretrainRecipe(), TestRuns.Config("text-pretrain", sets.Append("train.max_steps=3").ToArray()), split, TestRuns.Quiet))
            Assert.Equal(3, t.Run().Steps);
        using (var t = new Trainer(new TextPretrainRecipe(), TestRuns.Config("text-pretrain", sets), split, TestRuns.Quiet))
        {
            Assert.Equal(6, t.Run(resume: true).Steps);
            Same(expected, TestRuns.Weights(t.Recipe.Model), "resumed");
        }
    }

    [Fact]
    public void ASingleTarFeedsTwoMpiRanksAndResumesOnOneProcess()
    {
        string work = TestRuns.TempDir();
        var docs = Lines(Path.Combine(TestRuns.DataDir, "text.jsonl")).Take(30).ToList();
        string tar = Corpora.Tar(Path.Combine(work, "corpus.tar"), docs.Select((d, i) => ($"{i:D4}.txt", Encoding.UTF8.GetBytes(d["text"]!.GetValue<string>()))).ToList());
        string Config(int steps, int? maxSteps)
        {
            string path = Path.Combine(work, $"cfg-{steps}-{maxSteps}.json");
            File.WriteAllText(path, $$"""
                {
                  "recipe": "text-pretrain", "tokenizer": "bytes", "seed": 5,
                  "model": { "preset": "tiny", "hidden_size": 32, "intermediate_size": 64, "max_position_embeddings": 256 },
                  "data": { "train": "{{tar}}", "seq_len": 32, "readers": 2, "shuffle_buffer": 4, "prefetch": 4 },
                  "optim": { "lr": 1e-3, "warmup_steps": 1, "total_steps": {{steps}}, "schedule": "constant" },
                  "batch": { "unit": "tokens", "global": 128, "micro": 2 },
                  "train": { "save_every": 0, "eval_every": 0, "max_steps": {{maxSteps?.ToString() ?? "null"}} }
                }
                """);
            return path;
        }
        string worker = Path.Combine(AppContext.BaseDirectory, "Llama3.Multimodal.Training.MpiWorker.dll");
        string one = Path.Combine(work, "one"), two = Path.Combine(work, "two");
        var r1 = Distributed.MpiTests.Run(worker, $"recipe text-pretrain {Config(4, null)} {one}", timeoutSeconds: 300, mpi: false);
        Assert.True(r1.Code == 0, r1.Out);
        // Two ranks read the one tar's two interleaved parts for two steps; then one process resumes for two more.
        var r2 = Distributed.MpiTests.Run(worker, $"recipe text-pretrain {Config(4, 2)} {two}", timeoutSeconds: 300);
        Assert.True(r2.Code == 0, r2.Out);
        var r3 = Distributed.MpiTests.Run(worker, $"recipe text-pretrain {Config(4, null)} {two} resume", timeoutSeconds: 300, mpi: false);
        Assert.True(r3.Code == 0, r3.Out);
        JsonNode State(string dir) => JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "checkpoints", "step-00000004", "trainer_state.json")))!;
        Assert.Equal(State(one)["data_cursor"]!.ToJsonString(), State(two)["data_cursor"]!.ToJsonString());
        Assert.Equal(State(one)["tokens_seen"]?.ToJsonString(), State(two)["tokens_seen"]?.ToJsonString());
        Assert.Equal(2 * PackedShardSource.StateWidth, State(one)["data_cursor"]!["readers"]!.AsArray().Count);
        using var a = Text.SafeTensorsFile.Open(Path.Combine(one, "checkpoints", "step-00000004", "model.safetensors"));
        using var b = Text.SafeTensorsFile.Open(Path.Combine(two, "checkpoints", "step-00000004", "model.safetensors"));
        foreach (var name in a.Entries.Keys)
        {
            using var x = a.Read(name); using var y = b.Read(name);
            float diff = (x - y).abs().max().item<float>();
            Assert.True(diff < 1e-4f, $"{name}: {diff}");
        }
    }

    [Fact]
    public void EvalCaptionAndVideoScoreShardsAndParquetAsTheManifest()
    {
        string root = TestRuns.RepoRoot(), dir = TestRuns.TempDir();
        string vision = Path.Combine(root, "assets", "models", "demo", "vision");
        string images = Path.Combine(root, "assets", "demo", "images");
        var records = Lines(Path.Combine(images, "manifest.jsonl")).Take(4).ToList();
        string manifest = Path.Combine(dir, "images.jsonl");
        File.WriteAllLines(manifest, records.Select(r => new JsonObject { ["image"] = Path.Combine(images, r["image"]!.GetValue<string>()), ["caption"] = r["caption"]!.GetValue<string>() }.ToJsonString()));
        var expected = MultimodalEval.Caption(vision, manifest, maxNewTokens: 16, examples: -1);
        string Preds(JsonObject o) => string.Join("|", o["examples"]!.AsArray().Select(e => e!["prediction"]!.GetValue<string>()));
        Assert.True(expected["exact_match"]!.GetValue<double>() > 0);

        // Tar shards (KEY.png + KEY.txt) named by a brace pattern.
        string shardDir = Path.Combine(dir, "shards");
        Directory.CreateDirectory(shardDir);
        for (int s = 0; s < 2; s++)
            Corpora.Tar(Path.Combine(shardDir, $"img-{s:D3}.tar"), records.Skip(2 * s).Take(2).SelectMany((r, i) => new (string, byte[])[]
            {
                ($"{s}{i}.png", File.ReadAllBytes(Path.Combine(images, r["image"]!.GetValue<string>()))),
                ($"{s}{i}.txt", Encoding.UTF8.GetBytes(r["caption"]!.GetValue<string>())),
            }).ToList());
        var fromShards = MultimodalEval.Caption(vision, Path.Combine(shardDir, "img-{000..001}.tar"), maxNewTokens: 16, examples: -1);
        Assert.Equal(Preds(expected), Preds(fromShards));
        Assert.Equal(expected["exact_match"]!.GetValue<double>(), fromShards["exact_match"]!.GetValue<double>());

        // Parquet as HF exports it: an Image struct {bytes, path} and a text column, named by the columns' settings.
        string pq = Corpora.Parquet(Path.Combine(dir, "images.parquet"), "picture", "label",
            records.Select(r => (File.ReadAllBytes(Path.Combine(images, r["image"]!.GetValue<string>())), r["image"]!.GetValue<string>(), r["caption"]!.GetValue<string>())).ToList(), 2);
        var fromParquet = MultimodalEval.Caption(vision, pq, maxNewTokens: 16, examples: -1, columns: new DataSection { ImageColumn = "picture", TextColumn = "label" });
        Assert.Equal(Preds(expected), Preds(fromParquet));
        // The same from the command line: the column options are data.image_column and data.text_column.
        var cli = ImporterTests.Cli("eval", "caption", "--model", vision, "--data", pq, "--image-column", "picture", "--text-column", "label",
            "--max-new-tokens", "16", "--examples", "-1");
        Assert.True(cli.Code == 0, cli.Err);
        Assert.Equal(Preds(fromParquet), Preds((JsonObject)JsonNode.Parse(cli.Out)!));
        var noColumn = ImporterTests.Cli("eval", "caption", "--model", vision, "--data", pq);
        Assert.Equal(2, noColumn.Code);
        Assert.Contains("no image", noColumn.Err);
        Assert.Contains("no image member/column 'photo'",
            Assert.Throws<DataFormatException>(() => MultimodalEval.Caption(vision, pq, columns: new DataSection { ImageColumn = "photo" })).Message);

        // A video from a shard: the clip's bytes go to ffmpeg from memory; the captions equal the file's.
        string video = Path.Combine(root, "assets", "models", "demo", "video"), clip = Path.Combine(root, "assets", "demo", "videos", "000000.mp4");
        string videoManifest = Path.Combine(dir, "videos.jsonl");
        File.WriteAllText(videoManifest, new JsonObject { ["video"] = clip, ["caption"] = "a yellow triangle turns orange then it turns yellow" }.ToJsonString() + "\n");
        var v1 = MultimodalEval.Video(video, videoManifest, maxNewTokens: 16);
        string videoTar = Corpora.Tar(Path.Combine(dir, "videos.tar"), new (string, byte[])[] { ("c0.mp4", File.ReadAllBytes(clip)), ("c0.txt", "a yellow triangle turns orange then it turns yellow"u8.ToArray()) });
        var v2 = MultimodalEval.Video(video, videoTar, maxNewTokens: 16);
        Assert.Equal(1, v2["count"]!.GetValue<int>());
        Assert.NotEqual("", Preds(v2));
        Assert.Equal(Preds(v1), Preds(v2));
        Assert.Equal(v1["exact_match"]!.GetValue<double>(), v2["exact_match"]!.GetValue<double>());
    }
}

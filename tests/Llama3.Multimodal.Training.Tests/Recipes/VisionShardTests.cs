using System.Text;
using System.Text.Json.Nodes;
using Llama3.Multimodal.Training.Tests.Data;
using Parquet.Schema;
using Parquet.Serialization;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training.Tests.Recipes;

/// <summary>
/// <c>vision-sft</c>, <c>vision-reward</c> and <c>vision-dpo</c> read WebDataset shards and Parquet (HF layouts) as the
/// other recipes do: with shuffling off, the same multi-image dialogues and preference records train exactly as from the
/// manifest; a shuffled run over shards resumes bit-exactly; a bad sample is skipped and named.
/// </summary>
public class VisionShardTests
{
    static readonly Lazy<Fixture> Data = new(Make);

    sealed record Fixture(string Dir, List<(string Path, byte[] Png)> Images, List<JsonObject> Dialogs, List<JsonObject> Pairs);

    static JsonObject Text(string t) => new() { ["type"] = "text", ["text"] = t };
    static JsonObject Image() => new() { ["type"] = "image" };

    static Fixture Make()
    {
        string dir = TestRuns.TempDir();
        var scenes = File.ReadLines(MediaTestData.ImageManifest).Take(6).Select(l => (JsonObject)JsonNode.Parse(l)!)
            .Select(o => (Path: Path.GetFullPath(Path.Combine(Path.GetDirectoryName(MediaTestData.ImageManifest)!, (string)o["image"]!)), Caption: (string)o["caption"]!)).ToList();
        var images = scenes.Select(s => (s.Path, File.ReadAllBytes(s.Path))).ToList();
        // Two-image, two-turn dialogues (content parts, and a plain string with a placeholder) and one single-image dialogue.
        var dialogs = new List<JsonObject>();
        for (int i = 0; i < 5; i++)
        {
            int a = i, b = (i + 1) % scenes.Count;
            dialogs.Add(new JsonObject
            {
                ["images"] = new JsonArray(scenes[a].Path, scenes[b].Path),
                ["messages"] = new JsonArray(
                    new JsonObject { ["role"] = "user", ["content"] = new JsonArray(Image(), Text("First?")) },
                    new JsonObject { ["role"] = "assistant", ["content"] = new JsonArray(Text(scenes[a].Caption)) },
                    new JsonObject { ["role"] = "user", ["content"] = new JsonArray(Text("And "), Image(), Text("?")) },
                    new JsonObject { ["role"] = "assistant", ["content"] = new JsonArray(Text(scenes[b].Caption)) }),
            });
        }
        dialogs.Add(new JsonObject
        {
            ["images"] = new JsonArray(scenes[5].Path),
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = new JsonArray(Image(), Text("Describe.")) },
                new JsonObject { ["role"] = "assistant", ["content"] = new JsonArray(Text(scenes[5].Caption)) }),
        });
        // Preferences over two images: the first image's caption is chosen; some records have an edited response.
        var pairs = Enumerable.Range(0, 5).Select(i =>
        {
            var o = new JsonObject
            {
                ["images"] = new JsonArray(scenes[i].Path, scenes[i + 1].Path),
                ["prompt"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = new JsonArray(Image(), Image(), Text("The first one?")) }),
                ["chosen"] = scenes[i].Caption, ["rejected"] = scenes[i + 1].Caption + " zz",
            };
            if (i % 2 == 0) o["edited"] = scenes[i].Caption + " indeed";
            return o;
        }).ToList();
        File.WriteAllLines(Path.Combine(dir, "dialogs.jsonl"), dialogs.Select(d => d.ToJsonString()));
        File.WriteAllLines(Path.Combine(dir, "pairs.jsonl"), pairs.Select(d => d.ToJsonString()));
        return new Fixture(dir, images, dialogs, pairs);
    }

    static byte[] Png(Fixture f, JsonNode path) => f.Images.First(i => i.Path == path.GetValue<string>()).Png;

    /// <summary>WebDataset shards: KEY.json with the text fields and KEY.0.png, KEY.1.png, … in images order.</summary>
    static string Shards(Fixture f, string name, List<JsonObject> records, int perShard)
    {
        string dir = Path.Combine(f.Dir, name);
        Directory.CreateDirectory(dir);
        var chunks = records.Chunk(perShard).ToList();
        for (int s = 0; s < chunks.Count; s++)
            Corpora.Tar(Path.Combine(dir, $"{name}-{s:D6}.tar"), chunks[s].SelectMany((r, i) =>
            {
                var json = (JsonObject)r.DeepClone();
                json.Remove("images");
                var members = new List<(string, byte[])> { ($"{s:D2}{i:D4}.json", Encoding.UTF8.GetBytes(json.ToJsonString())) };
                members.AddRange(r["images"]!.AsArray().Select((p, k) => ($"{s:D2}{i:D4}.{k}.png", Png(f, p!))));
                return members;
            }).ToList());
        return Path.Combine(dir, $"{name}-{{000000..{chunks.Count - 1:D6}}}.tar");
    }

    // HF chat messages as Parquet.Net rows: content parts as structs {index, text, type} (index set on image parts).
    static List<IDictionary<string, object?>> Messages(JsonNode messages) => messages.AsArray().Select(m =>
    {
        int image = 0;
        var parts = m!["content"] is JsonArray a
            ? a.Select(p => (string)p!["type"]! == "image"
                ? (IDictionary<string, object?>)new Dictionary<string, object?> { ["index"] = (long?)image++, ["text"] = null, ["type"] = "image" }
                : new Dictionary<string, object?> { ["index"] = null, ["text"] = (string)p["text"]!, ["type"] = "text" }).ToList()
            : new List<IDictionary<string, object?>> { new Dictionary<string, object?> { ["index"] = null, ["text"] = (string)m["content"]!, ["type"] = "text" } };
        return (IDictionary<string, object?>)new Dictionary<string, object?> { ["content"] = parts, ["role"] = (string)m["role"]! };
    }).ToList();

    static Field MessagesField(string name) => new ListField(name, new StructField("element",
        new ListField("content", new StructField("element", new DataField<long?>("index"), new DataField<string>("text"), new DataField<string>("type"))),
        new DataField<string>("role")));

    static Field ImagesField() => new ListField("images", new StructField("element", new DataField<byte[]>("bytes"), new DataField<string>("path")));

    static List<IDictionary<string, object?>> ImagesOf(Fixture f, JsonObject r) => r["images"]!.AsArray()
        .Select(p => (IDictionary<string, object?>)new Dictionary<string, object?> { ["bytes"] = (ReadOnlyMemory<byte>?)Png(f, p!), ["path"] = Path.GetFileName(p!.GetValue<string>()) }).ToList();

    static string Write(string path, ParquetSchema schema, List<IDictionary<string, object?>> rows, int rowGroups)
    {
        using var file = File.Create(path);
        ParquetSerializer.SerializeUntypedAsync(rows, schema, file, new Parquet.ParquetOptions { RowGroupSize = (rows.Count + rowGroups - 1) / rowGroups }).GetAwaiter().GetResult();
        return path;
    }

    /// <summary>Dialogues as HF vision chat sets export them: <c>images</c> Sequence(Image), <c>messages</c> with content parts.</summary>
    static string DialogParquet(Fixture f) => Write(Path.Combine(f.Dir, "dialogs.parquet"), new ParquetSchema(ImagesField(), MessagesField("messages")),
        f.Dialogs.Select(d => (IDictionary<string, object?>)new Dictionary<string, object?> { ["images"] = ImagesOf(f, d), ["messages"] = Messages(d["messages"]!) }).ToList(), 2);

    /// <summary>Preferences as HF vision preference sets export them: images, prompt messages, chosen/rejected assistant messages.</summary>
    static string PairParquet(Fixture f) => Write(Path.Combine(f.Dir, "pairs.parquet"),
        new ParquetSchema(ImagesField(), MessagesField("prompt"), MessagesField("chosen"), MessagesField("rejected"), new DataField<string>("edited")),
        f.Pairs.Select(p => (IDictionary<string, object?>)new Dictionary<string, object?>
        {
            ["images"] = ImagesOf(f, p), ["prompt"] = Messages(p["prompt"]!),
            ["chosen"] = Messages(new JsonArray(new JsonObject { ["role"] = "assistant", ["content"] = (string)p["chosen"]! })),
            ["rejected"] = Messages(new JsonArray(new JsonObject { ["role"] = "assistant", ["content"] = (string)p["rejected"]! })),
            ["edited"] = p["edited"]?.GetValue<string>(),
        }).ToList(), 3);

    static TrainConfig Config(string recipe, string data, long steps, params string[] sets) =>
        VisionPostTrainingData.Config(recipe, steps, new[] { $"data.train=\"{data}\"", "data.seq_len=160", "data.readers=1", "data.shuffle_buffer=1" }.Concat(sets).ToArray());

    static (Dictionary<string, float[]> Weights, double[] Losses) Train(string recipe, string data, long steps, params string[] sets)
    {
        using var t = new Trainer(RecipeRegistry.Create(recipe), Config(recipe, data, steps, sets), TestRuns.TempDir(), TestRuns.Quiet);
        var r = t.Run();
        Assert.Equal(steps, r.Steps);
        return (TestRuns.Weights(t.Recipe.Model), r.History.Select(h => h.Loss).ToArray());
    }

    static void Same((Dictionary<string, float[]> Weights, double[] Losses) a, (Dictionary<string, float[]> Weights, double[] Losses) b, string what)
    {
        Assert.True(a.Losses.SequenceEqual(b.Losses), $"{what}: losses {string.Join(", ", b.Losses)} differ from {string.Join(", ", a.Losses)}");
        Assert.Equal(a.Weights.Keys.Order(), b.Weights.Keys.Order());
        foreach (var (k, v) in a.Weights) Assert.True(v.AsSpan().SequenceEqual(b.Weights[k]), $"{what}: weight {k} differs");
    }

    [Fact]
    public void VisionSftTrainsOnShardsAndHfParquetExactlyAsOnTheManifest()
    {
        var f = Data.Value;
        var expected = Train("vision-sft", Path.Combine(f.Dir, "dialogs.jsonl"), 3);
        Assert.True(expected.Losses.All(double.IsFinite));
        Same(expected, Train("vision-sft", Shards(f, "dialogs", f.Dialogs, 4), 3), "vision-sft on shards");
        Same(expected, Train("vision-sft", DialogParquet(f), 3), "vision-sft on Parquet");
    }

    [Fact]
    public void VisionRewardAndDpoTrainOnShardsAndHfParquetExactlyAsOnTheManifest()
    {
        var f = Data.Value;
        string jsonl = Path.Combine(f.Dir, "pairs.jsonl"), shards = Shards(f, "pairs", f.Pairs, 2), pq = PairParquet(f);
        foreach (var recipe in new[] { "vision-reward", "vision-dpo" })
        {
            var expected = Train(recipe, jsonl, 2);
            Same(expected, Train(recipe, shards, 2), $"{recipe} on shards");
            Same(expected, Train(recipe, pq, 2), $"{recipe} on Parquet");
        }
        // RLAIF-V's own layout: one Image struct, a question and string responses, here under other names that the
        // config renames; it trains as the manifest of the same records (a string prompt: the image first).
        var single = f.Pairs.Select(p => new JsonObject
        {
            ["images"] = new JsonArray(p["images"]![0]!.GetValue<string>()), ["prompt"] = "What is shown?",
            ["chosen"] = p["chosen"]!.GetValue<string>(), ["rejected"] = p["rejected"]!.GetValue<string>(),
        }).ToList();
        string singleJsonl = Path.Combine(f.Dir, "single.jsonl");
        File.WriteAllLines(singleJsonl, single.Select(o => o.ToJsonString()));
        var bytes = new DataField<ReadOnlyMemory<byte>?>("bytes");
        string renamed = Write(Path.Combine(f.Dir, "rlaif-renamed.parquet"), new ParquetSchema(new StructField("image", bytes, new DataField<string>("path")),
            new DataField<string>("question"), new DataField<string>("answer_good"), new DataField<string>("answer_bad")),
            single.Select(o => (IDictionary<string, object?>)new Dictionary<string, object?>
            {
                ["image"] = new Dictionary<string, object?> { ["bytes"] = (ReadOnlyMemory<byte>?)Png(f, o["images"]![0]!), ["path"] = "x.png" },
                ["question"] = "What is shown?", ["answer_good"] = o["chosen"]!.GetValue<string>(), ["answer_bad"] = o["rejected"]!.GetValue<string>(),
            }).ToList(), 2);
        Same(Train("vision-dpo", singleJsonl, 2), Train("vision-dpo", renamed, 2, "data.chosen_column=\"answer_good\"", "data.rejected_column=\"answer_bad\""),
            "vision-dpo on RLAIF-V-style Parquet with renamed columns");
        string rlaif = Corpora.Parquet(Path.Combine(f.Dir, "rlaif.parquet"), "image", "question",
            f.Pairs.Select(p => (Png(f, p["images"]![0]!), "x.png", "What is shown?")).ToList(), 2);
        using var r = RecipeRegistry.Create("vision-reward");
        r.Setup(Config("vision-reward", rlaif, 1), CPU, ScalarType.Float32);
        // No chosen column: the error names the shard, the key and what the sample holds.
        using (var src = r.OpenData(false, DataCursor.Start))
        {
            var e = Assert.Throws<DataFormatException>(() => src.Next(160));
            Assert.Contains("rlaif.parquet (row group 0), key row 0", e.Message);
            Assert.Contains("chosen", e.Message);
        }
    }

    [Fact]
    public void ShuffledShardsResumeBitExactlyAcrossEpochs()
    {
        var f = Data.Value;
        string shards = Shards(f, "resume", f.Dialogs, 2);   // 3 shards of 2, two readers, a shuffle buffer of 2; 5 steps of 2 span two epochs
        string[] sets = { "data.shuffle=true", "data.readers=2", "data.shuffle_buffer=2" };
        var full = Train("vision-sft", shards, 5, sets);
        string dir = TestRuns.TempDir();
        using (var t = new Trainer(RecipeRegistry.Create("vision-sft"), Config("vision-sft", shards, 5, sets.Append("train.max_steps=2").ToArray()), dir, TestRuns.Quiet))
            Assert.Equal(2, t.Run().Steps);
        using (var t = new Trainer(RecipeRegistry.Create("vision-sft"), Config("vision-sft", shards, 5, sets), dir, TestRuns.Quiet))
        {
            var r = t.Run(resume: true);
            Assert.Equal(5, r.Steps);
            Assert.True(full.Losses.Skip(2).SequenceEqual(r.History.Select(h => h.Loss)), "the resumed losses differ");
            Same(full with { Losses = Array.Empty<double>() }, (TestRuns.Weights(t.Recipe.Model), Array.Empty<double>()), "resumed");
        }
    }

    [Fact]
    public void ABadSampleIsSkippedAndNamedByShardAndKey()
    {
        var f = Data.Value;
        var good = f.Dialogs[0];
        var json = (JsonObject)good.DeepClone();
        json.Remove("images");
        string tar = Corpora.Tar(Path.Combine(f.Dir, "bad.tar"), new (string, byte[])[]
        {
            ("k1.json", Encoding.UTF8.GetBytes(json.ToJsonString())), ("k1.0.png", Png(f, good["images"]![0]!)), ("k1.1.png", Png(f, good["images"]![1]!)),
            ("k2.json", Encoding.UTF8.GetBytes(json.ToJsonString())), ("k2.0.png", Png(f, good["images"]![0]!)), ("k2.1.png", new byte[] { 1, 2, 3 }),
            ("k3.json", Encoding.UTF8.GetBytes(json.ToJsonString())), ("k3.0.png", Png(f, good["images"]![0]!)),       // two image parts, one image
            ("k4.json", Encoding.UTF8.GetBytes(json.ToJsonString())), ("k4.0.png", Png(f, good["images"]![0]!)), ("k4.1.png", Png(f, good["images"]![1]!)),
        });
        using (var r = RecipeRegistry.Create("vision-sft"))
        {
            r.Setup(Config("vision-sft", tar, 1, "data.skip_bad_records=true"), CPU, ScalarType.Float32);
            using var src = r.OpenData(false, DataCursor.Start);
            using var b = src.Next(160);
            Assert.Equal(2, b.Samples);
            Assert.Equal(2, src.Skipped);
            Assert.Contains($"{tar}, key k3", src.LastSkip);
            Assert.Contains("image part", src.LastSkip);
        }
        using (var r = RecipeRegistry.Create("vision-sft"))
        {
            r.Setup(Config("vision-sft", tar, 1), CPU, ScalarType.Float32);
            using var src = r.OpenData(false, DataCursor.Start);
            var e = Assert.Throws<DataFormatException>(() => src.Next(160));
            Assert.Contains($"{tar}, key k2 (1.png)", e.Message);
            Assert.Contains("data.skip_bad_records", e.Message);
        }
    }
}

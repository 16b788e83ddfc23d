using Llama3.Multimodal.Text;
using Llama3.Multimodal.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training.Tests;

public class DataTests
{
    [Fact]
    public void BadManifestLineIsAnErrorNamingFileAndLine()
    {
        string dir = TestRuns.TempDir(), path = Path.Combine(dir, "chat.jsonl");
        File.WriteAllLines(path, new[]
        {
            """{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}""",
            "",
            """{"messages":[{"role":"user","content":"hi"},{"role":"robot","content":"x"}]}""",
            """{"messages":[{"role":"user","content":"only a question"}]}""",
            """{"messages": [oops""",
        });
        var e = Assert.Throws<DataFormatException>(() => JsonlManifest.ReadDialogs(path, false, out _));
        Assert.Contains($"{path}:3:", e.Message);
        Assert.Contains("robot", e.Message);
        var ok = JsonlManifest.ReadDialogs(path, true, out int skipped);
        Assert.Single(ok);
        Assert.Equal(3, skipped);
    }

    [Fact]
    public void ManifestPathsResolveRelativeToTheManifestAndMissingFilesAreNamed()
    {
        string dir = TestRuns.TempDir();
        Directory.CreateDirectory(Path.Combine(dir, "img"));
        File.WriteAllBytes(Path.Combine(dir, "img", "a.png"), new byte[] { 1 });
        string path = Path.Combine(dir, "images.jsonl");
        File.WriteAllLines(path, new[] { """{"image":"img/a.png","caption":"a"}""", """{"image":"img/missing.png","caption":"b"}""" });
        var e = Assert.Throws<DataFormatException>(() => JsonlManifest.ReadImageCaptions(path, false, out _));
        Assert.Contains($"{path}:2:", e.Message);
        Assert.Contains("missing.png", e.Message);
        var recs = JsonlManifest.ReadImageCaptions(path, true, out _);
        Assert.Equal(Path.Combine(dir, "img", "a.png"), recs[0].Image);

        string audio = Path.Combine(dir, "audio.jsonl");
        File.WriteAllLines(audio, new[] { """{"audio":"img/a.png","text":"hola","task":"ast"}""" });
        Assert.Contains($"{audio}:1:", Assert.Throws<DataFormatException>(() => JsonlManifest.ReadAudioTexts(audio, false, out _)).Message);
        string pairs = Path.Combine(dir, "pairs.jsonl");
        File.WriteAllLines(pairs, new[] { """{"prompt":"q","chosen":"a","rejected":"b","extra":1}""" });
        Assert.Contains("unknown field \"extra\"", Assert.Throws<DataFormatException>(() => JsonlManifest.ReadPreferences(pairs, false, out _)).Message);
    }

    [Fact]
    public void PackingFillsRowsWithDocumentIdsAndMasksCrossDocumentLabels()
    {
        var docs = new List<TextDocument> { new("abc"), new("defgh"), new("ij") };   // bytes: 5, 7, 4 tokens with bos/eos
        var tok = ByteTokenizer.Instance;
        using var src = new PackedTextSource(docs, tok, 1, 1, false, 4, DataCursor.Start);
        using var b = src.Next(8);
        long[] ids = b["input_ids"].data<long>().ToArray(), docIds = b["document_ids"].data<long>().ToArray(), labels = b["labels"].data<long>().ToArray();
        Assert.Equal(new long[] { 256, 'a', 'b', 'c', 257, 256, 'd', 'e' }, ids);
        Assert.Equal(new long[] { 0, 0, 0, 0, 0, 1, 1, 1 }, docIds);
        Assert.Equal(new long[] { 'a', 'b', 'c', 257, -100, 'd', 'e', -100 }, labels);
        Assert.Equal(6, b.LossElements);
        Assert.Equal(new DataCursor(0, 1, 3), b.End);
        using var b2 = src.Next(8);
        Assert.Equal(new long[] { 'f', 'g', 'h', 257, 256, 'i', 'j', 257 }, b2["input_ids"].data<long>().ToArray());
        Assert.Equal(new long[] { 0, 0, 0, 0, 1, 1, 1, 1 }, b2["document_ids"].data<long>().ToArray());
        // Resuming at the cursor gives the same second row.
        using var again = new PackedTextSource(docs, tok, 1, 1, false, 4, b.End);
        using var b3 = again.Next(8);
        Assert.Equal(b2["input_ids"].data<long>().ToArray(), b3["input_ids"].data<long>().ToArray());
    }

    [Fact]
    public void PackedLossWithDocumentMaskEqualsPerDocumentLosses()
    {
        using var recipe = new TextPretrainRecipe();
        recipe.Setup(TestRuns.Config("text-pretrain"), CPU, ScalarType.Float32);
        var tok = recipe.Tokenizer;
        var docs = new List<TextDocument> { new("the cat is black."), new("the owl is grey. the dog"), new("fox") };
        int total = docs.Sum(d => d.Text.Length + 2);
        using var src = new PackedTextSource(docs, tok, 1, 1, false, 4, DataCursor.Start);
        using var b = src.Next(total);
        using var packed = recipe.Loss(b).Sum;
        double perDoc = 0;
        foreach (var d in docs)
        {
            var ids = new List<int> { tok.BosId }; ids.AddRange(tok.Encode(d.Text)); ids.Add(tok.EosId);
            using var x = torch.tensor(ids.Select(i => (long)i).ToArray(), new long[] { 1, ids.Count });
            using var logits = recipe.Lm.Forward(x);
            using var y = torch.tensor(ids.Skip(1).Select(i => (long)i).Append(-100L).ToArray(), new long[] { 1, ids.Count });
            using var l = PreferenceLosses.CrossEntropySum(logits, y);
            perDoc += l.item<float>();
        }
        Assert.Equal(perDoc, packed.item<float>(), 3);
        // Without the document mask the same row gives a different loss, so the mask is what makes them equal.
        using var plain = PreferenceLosses.CrossEntropySum(recipe.Lm.Forward(b["input_ids"]), b["labels"]);
        Assert.True(Math.Abs(plain.item<float>() - perDoc) > 1e-3);
    }

    [Fact]
    public void ShuffleIsSeededPerEpoch()
    {
        var a = RecordStream<int, int>.Order(50, 3, 0, true);
        Assert.Equal(a, RecordStream<int, int>.Order(50, 3, 0, true));
        Assert.NotEqual(a, RecordStream<int, int>.Order(50, 3, 1, true));
        Assert.NotEqual(a, RecordStream<int, int>.Order(50, 4, 0, true));
        Assert.Equal(Enumerable.Range(0, 50).Select(i => (long)i), a.OrderBy(x => x));
    }

    [Fact]
    public void ConfigRejectsUnknownKeysAndAppliesOverrides()
    {
        string dir = TestRuns.TempDir(), path = Path.Combine(dir, "c.json");
        File.WriteAllText(path, """
            // mm-train sft --config c.json --out runs/x
            { "recipe": "sft", "optim": { "lr": 0.5 }, "data": { "train": "chat.jsonl" } }
            """);
        using var r = new SftRecipe();
        var c = ConfigLoader.Load(r.DefaultConfig(), path, new[] { "optim.warmup_steps=3", "train.freeze=[\"embed_tokens\"]", "tokenizer=bytes" });
        Assert.Equal(0.5, c.Optim.Lr);
        Assert.Equal(3, c.Optim.WarmupSteps);
        Assert.Equal(0.95, c.Optim.Beta2);
        Assert.Equal(new[] { "embed_tokens" }, c.Train.Freeze);
        Assert.Equal("bytes", c.Tokenizer);
        Assert.Equal(Path.Combine(dir, "chat.jsonl"), c.Data.Train);
        File.WriteAllText(path, """{ "optim": { "learning_rate": 0.5 } }""");
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load(r.DefaultConfig(), path));
        Assert.Contains("optim.learning_rate", e.Message);
        Assert.Contains(path, e.Message);
        Assert.Contains("optim.lr2", Assert.Throws<ConfigException>(() => ConfigLoader.Load(r.DefaultConfig(), null, new[] { "optim.lr2=1" })).Message);
        Assert.Contains("optim.schedule", Assert.Throws<ConfigException>(() => ConfigLoader.Load(r.DefaultConfig(), null, new[] { "optim.schedule=step" })).Message);
    }
}

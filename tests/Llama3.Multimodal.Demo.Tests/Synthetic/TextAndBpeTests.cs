using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Demo.Tests;

public class TextAndBpeTests
{
    [Fact]
    public void TextCorpusAndDialogsAreReproducibleAndPassTheTrainerReader()
    {
        var o = new TextMakerOptions(50, 40, Seed: 8);
        var (c1, d1) = TextDataMaker.Make(o, SyntheticTestFiles.NewDir("txt-a"));
        var (c2, d2) = TextDataMaker.Make(o, SyntheticTestFiles.NewDir("txt-b"));
        Assert.Equal(File.ReadAllBytes(c1.ManifestPath), File.ReadAllBytes(c2.ManifestPath));
        Assert.Equal(File.ReadAllBytes(d1.ManifestPath), File.ReadAllBytes(d2.ManifestPath));
        Assert.Equal(50, JsonlManifest.ReadText(c1.ManifestPath, false, out _).Count);
        var dialogs = JsonlManifest.ReadDialogs(d1.ManifestPath, false, out _);
        Assert.Equal(40, dialogs.Count);
        Assert.Contains(dialogs, d => d.Messages[0].Content == SyntheticPrompts.DescribeImage);
        Assert.All(dialogs, d => Assert.Equal(new[] { "user", "assistant" }, d.Messages.Select(m => m.Role)));
    }

    static List<string> Corpus(int seed, int n)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => TextDataMaker.Sentence(rng)).ToList();
    }

    [Fact]
    public void TrainedVocabularyLoadsRoundTripsAndCompresses()
    {
        var texts = Corpus(1, 3000);
        string path = Path.Combine(SyntheticTestFiles.NewDir("bpe"), "tokenizer.model");
        var tokens = BpeTrainer.TrainToFile(texts, 400, path);
        Assert.Equal(400, tokens.Count);
        var again = BpeTrainer.Train(texts, 400);
        Assert.Equal(tokens.Select(Convert.ToBase64String), again.Select(Convert.ToBase64String));

        var tok = Llama3Tokenizer.FromFile(path);
        Assert.Equal(400, tok.BaseVocabSize);
        Assert.Equal(400 + 256, tok.VocabSize);
        Assert.Equal(400, tok.BosId);
        for (int b = 0; b < 256; b++) Assert.Equal(new[] { (byte)b }, tok.TokenBytes(b));

        // Held-out sentences of the same grammar, plus text far outside it, round-trip exactly.
        var probe = Corpus(2, 200).Concat(new[] { "Zebra ümlaut 123 ✓ — 日本語\n\ttabs", "<|image|> is plain text here", "" }).ToList();
        long chars = 0, ids = 0;
        foreach (var t in probe)
        {
            var e = tok.Encode(t);
            Assert.Equal(t, tok.Decode(e));
            Assert.All(e, id => Assert.InRange(id, 0, 399));
        }
        foreach (var t in Corpus(2, 200)) { chars += t.Length; ids += tok.Encode(t).Count; }
        double perChar = (double)ids / chars;
        Assert.True(perChar < 0.35, $"tokens/char {perChar:F3}");   // bytes alone would be 1.0

        // Chat specials sit after the base vocabulary.
        var chat = new ChatFormat(tok).EncodeDialog(new[] { new ChatMessage("user", "Describe the image.") }, addAssistantHeader: true, allowedSpecials: null);
        Assert.Equal(tok.BosId, chat[0]);
        Assert.Contains(tok.EotId, chat);
    }

    [Fact]
    public void TooSmallCorpusForTheVocabularyIsAnError()
    {
        var e = Assert.Throws<DataFormatException>(() => BpeTrainer.Train(new[] { "the red circle" }, 300));
        Assert.Contains("300", e.Message);
        Assert.Throws<DataFormatException>(() => BpeTrainer.Train(new[] { "x" }, 100));
    }

    [Fact]
    public void ReadTextsTakesCaptionsTextsAndMessageContents()
    {
        string dir = SyntheticTestFiles.NewDir("bpe-read"), p = Path.Combine(dir, "m.jsonl");
        File.WriteAllText(p, "{\"text\":\"alpha\"}\n\n{\"image\":\"a.png\",\"caption\":\"beta\"}\n{\"messages\":[{\"role\":\"user\",\"content\":\"gamma\"}]}\n");
        Assert.Equal(new[] { "alpha", "beta", "gamma" }, BpeTrainer.ReadTexts(p).ToArray());
        File.WriteAllText(p, "{\"text\":\n");
        var e = Assert.Throws<DataFormatException>(() => BpeTrainer.ReadTexts(p).ToList());
        Assert.Contains("m.jsonl:1", e.Message);
    }
}

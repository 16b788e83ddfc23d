using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Text.Tests;

public class TokenizerTests
{
    static readonly Llama3Tokenizer Tok = Llama3Tokenizer.Default;

    [Fact]
    public void KnownIdsFromTheRealVocabulary()
    {
        Assert.Equal(new[] { 9906, 1917, 0 }, Tok.Encode("Hello world!"));
        Assert.Equal(new[] { 40, 3358 }, Tok.Encode("I'll"));
        Assert.Equal(128000, Tok.BaseVocabSize);
        Assert.Equal(128256, Tok.VocabSize);
    }

    [Theory]
    [InlineData("The quick brown fox jumps over the lazy dog.")]
    [InlineData("Zürich, naïve café — “quotes” … ½ ¾")]
    [InlineData("日本語のテキストと中文混合，한국어도 있어요。")]
    [InlineData("emoji 👩‍👩‍👧‍👦 🇫🇷 🙂 and combining e\u0301 a\u0308")]
    [InlineData("code:\n\tfor (int i = 0; i < 10; i++) { x += i; }\r\n   \n\n")]
    [InlineData("numbers 1234567890 3.14159 -42 1e10")]
    [InlineData("Ελληνικά, русский, עברית, العربية, हिन्दी")]
    [InlineData("   leading and trailing spaces   ")]
    public void RoundTripsVariedUnicode(string s)
    {
        Assert.Equal(s, Tok.Decode(Tok.Encode(s)));
    }

    [Fact]
    public void SpecialTokenIdsAndNames()
    {
        Assert.Equal(128000, Tok.SpecialId("<|begin_of_text|>"));
        Assert.Equal(128001, Tok.SpecialId("<|end_of_text|>"));
        Assert.Equal(128004, Tok.SpecialId("<|finetune_right_pad_id|>"));
        Assert.Equal(128005, Tok.SpecialId("<|step_id|>"));
        Assert.Equal(128006, Tok.SpecialId("<|start_header_id|>"));
        Assert.Equal(128007, Tok.SpecialId("<|end_header_id|>"));
        Assert.Equal(128008, Tok.SpecialId("<|eom_id|>"));
        Assert.Equal(128009, Tok.SpecialId("<|eot_id|>"));
        Assert.Equal(128010, Tok.SpecialId("<|python_tag|>"));
        Assert.Equal(128011, Tok.SpecialId("<|reserved_special_token_3|>"));
        Assert.Equal(128255, Tok.SpecialId("<|reserved_special_token_247|>"));
    }

    [Fact]
    public void SpecialTextInUserContentIsPlainTextByDefault()
    {
        var plain = Tok.Encode("<|eot_id|>");
        Assert.DoesNotContain(128009, plain);
        Assert.True(plain.Count > 1);
        Assert.Equal("<|eot_id|>", Tok.Decode(plain));
        var allowed = Tok.Encode("a<|eot_id|>b", allowSpecial: true);
        Assert.Equal(new[] { Tok.Encode("a")[0], 128009, Tok.Encode("b")[0] }, allowed);
    }

    [Fact]
    public void ChatFormatMatchesTheReferenceLayout()
    {
        var fmt = new ChatFormat(Tok);
        var ids = fmt.EncodeDialog(new[] { new ChatMessage("system", "Be brief."), new ChatMessage("user", "  Hi <|eot_id|> there \n") });
        string expected = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nHi <|eot_id|> there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
        Assert.Equal(expected, Tok.Decode(ids));
        // Only the formatter's eot tokens are specials: the one typed by the user is plain text.
        Assert.Equal(2, ids.Count(i => i == 128009));
        Assert.Equal(128000, ids[0]);
        Assert.Throws<ArgumentException>(() => fmt.EncodeDialog(new[] { new ChatMessage("robot", "x") }));
    }

    [Fact]
    public void LongRunsAreSplitBeforeTheRegex()
    {
        string s = new string('a', 60_000) + " " + new string(' ', 30_000) + "b";
        var ids = Tok.Encode(s);
        Assert.Equal(s, Tok.Decode(ids));
        Assert.All(Llama3Tokenizer.SplitRuns(s, 25_000), piece => Assert.True(piece.Length <= 50_001));
    }

    [Fact]
    public void StreamingDecoderHoldsBackPartialCharacters()
    {
        string s = "a😀b日本";
        var ids = Tok.Encode(s);
        var dec = Tok.NewStreamingDecoder();
        var pieces = ids.Select(dec.Push).ToList();
        pieces.Add(dec.Flush());
        Assert.Equal(s, string.Concat(pieces));
        Assert.DoesNotContain(pieces, p => p.Contains('\uFFFD'));
    }

    [Fact]
    public void HuggingFaceTokenizerJsonGivesTheSameIds()
    {
        // Build a tokenizer.json (byte-level BPE) from the real vocabulary, as HF stores Llama 3's.
        string dir = TestModels.TempDir();
        string path = Path.Combine(dir, "tokenizer.json");
        var byteToUnicode = new Dictionary<byte, char>();
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF;
            byteToUnicode[(byte)b] = printable ? (char)b : (char)(256 + n++);
        }
        using (var fs = File.Create(path))
        using (var w = new System.Text.Json.Utf8JsonWriter(fs))
        {
            w.WriteStartObject();
            w.WriteStartObject("model");
            w.WriteString("type", "BPE");
            w.WriteStartObject("vocab");
            for (int id = 0; id < Tok.BaseVocabSize; id++)
                w.WriteNumber(new string(Tok.TokenBytes(id).Select(b => byteToUnicode[b]).ToArray()), id);
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteStartArray("added_tokens");
            foreach (var (name, id) in new[] { ("<|begin_of_text|>", 128000), ("<|eot_id|>", 128009) })
            {
                w.WriteStartObject(); w.WriteNumber("id", id); w.WriteString("content", name); w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        var hf = Llama3Tokenizer.FromFile(path);
        foreach (var s in new[] { "Hello world!", "I'll go to Zürich 2024 🙂", "  \n\tmixed   spaces" })
            Assert.Equal(Tok.Encode(s), hf.Encode(s));
    }

    [Fact]
    public void MalformedRanksFilesAreClearErrors()
    {
        string dir = TestModels.TempDir();
        void Check(string content, string expect)
        {
            string p = Path.Combine(dir, Guid.NewGuid().ToString("N") + ".model");
            File.WriteAllText(p, content);
            var e = Assert.Throws<TokenizerFormatException>(() => Llama3Tokenizer.FromFile(p));
            Assert.Contains(expect, e.Message);
            Assert.Contains(p, e.Message);
        }
        Check("QQ== notanumber\n", "expected 'base64 rank'");
        Check("!!!! 0\n", "invalid base64");
        Check("QQ== 0\nQg== 0\n", "appears twice");
        Check("QQ== 1\n", "rank 0 is missing");
        Check("QQ== 0\n", "single byte");
        Assert.Throws<TokenizerFormatException>(() => Llama3Tokenizer.FromFile(Path.Combine(dir, "absent.model")));
    }
}

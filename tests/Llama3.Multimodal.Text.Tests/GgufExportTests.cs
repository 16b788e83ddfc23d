using System.Text;
using System.Text.RegularExpressions;
using Llama3.Multimodal.Bench.Gguf;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text.Tests;

/// <summary>The GGUF exporter of the llama.cpp comparison (bench/Llama3.Multimodal.Bench.Gguf): file layout, Q8_0, the
/// rotary row order, the BPE merges, and the re-read check on tiny random models.</summary>
public class GgufExportTests
{
    static string SaveModel(LlamaConfig cfg)
    {
        string dir = TestModels.TempDir();
        using var m = LlamaForCausalLM.Create(cfg, CPU, ScalarType.Float32).InitializeWeights(3, 0.1);
        m.Save(dir, CheckpointLayout.HuggingFace);
        return dir;
    }

    [Theory]
    [InlineData("f32", true)]
    [InlineData("f16", true)]
    [InlineData("q8_0", false)]
    public void Export_RereadsEqualToTheSource(string type, bool tied)
    {
        var cfg = TextPresets.Get("tiny") with { TieWordEmbeddings = tied };
        string dir = SaveModel(cfg);
        string file = Path.Combine(dir, "model.gguf");
        var t = LlamaGguf.ParseType(type);
        LlamaGguf.Export(dir, file, t);

        var head = File.ReadAllBytes(file).AsSpan(0, 24).ToArray();
        Assert.Equal("GGUF"u8.ToArray(), head[..4]);
        Assert.Equal(3u, BitConverter.ToUInt32(head, 4));
        int expectTensors = 1 + 1 + 9 * cfg.NumLayers + 1 + (tied ? 0 : 1);
        Assert.Equal((ulong)expectTensors, BitConverter.ToUInt64(head, 8));

        var r = GgufCheck.Verify(dir, file, t);
        Assert.Equal(expectTensors, r.Tensors);
        Assert.Equal(128256, r.Tokens);
        Assert.True(r.Merges > 128000 - 256, $"{r.Merges} merges");
        using var g = GgufReader.Open(file);
        Assert.Equal(tied, !g.Tensors.Any(x => x.Name == "output.weight"));
        Assert.Equal(new long[] { 64, 128256 }, g.Tensor("token_embd.weight").Dims);
        Assert.Equal(new long[] { 64, cfg.NumKvHeads * cfg.HeadDim }, g.Tensor("blk.1.attn_k.weight").Dims);
        Assert.Equal(GgmlType.F32, g.Tensor("blk.0.attn_norm.weight").Type);
        Assert.Equal(t, g.Tensor("blk.0.ffn_down.weight").Type);
        Assert.All(g.Tensors, x => Assert.Equal(0, (g.DataStart + x.Offset) % 32));
        if (t == GgmlType.Q8_0) Assert.True(r.MaxQ8ErrorOverScale is > 0.3 and < 0.6, $"{r.MaxQ8ErrorOverScale}");
    }

    [Fact]
    public void Check_FindsAChangedWeight()
    {
        string dir = SaveModel(TextPresets.Get("tiny"));
        string file = Path.Combine(dir, "model.gguf");
        LlamaGguf.Export(dir, file, GgmlType.F32);
        long at;
        using (var g = GgufReader.Open(file)) at = g.DataStart + g.Tensor("blk.1.ffn_up.weight").Offset + 4 * 77;
        using (var fs = new FileStream(file, FileMode.Open, FileAccess.ReadWrite))
        {
            fs.Seek(at + 3, SeekOrigin.Begin);
            int b = fs.ReadByte();
            fs.Seek(at + 3, SeekOrigin.Begin);
            fs.WriteByte((byte)(b ^ 0x01));
        }
        var e = Assert.Throws<InvalidDataException>(() => GgufCheck.Verify(dir, file, GgmlType.F32));
        Assert.Contains("blk.1.ffn_up.weight[77]", e.Message);
    }

    [Fact]
    public void Reader_RejectsANonGgufFile()
    {
        string f = Path.Combine(TestModels.TempDir(), "x.gguf");
        File.WriteAllBytes(f, Encoding.ASCII.GetBytes("GGML not really a gguf file"));
        var e = Assert.Throws<InvalidDataException>(() => GgufReader.Open(f));
        Assert.Contains(f, e.Message);
        Assert.Contains("magic", e.Message);
    }

    [Fact]
    public void Q8_0_ScaleRoundingAndBound()
    {
        // One block with max |x| = 127 → scale 1; halves round away from zero, as C's roundf does.
        var x = new float[64];
        x[0] = 127; x[1] = -63.5f; x[2] = 2.5f; x[3] = -0.49f;
        var rng = new Random(5);
        for (int i = 32; i < 64; i++) x[i] = (float)(rng.NextDouble() * 2 - 1) * 3e-3f; // a block whose scale is a subnormal-range half
        var q = new byte[2 * Q8Block.Bytes];
        Q8Block.Quantize(x, q);
        Assert.Equal((Half)1f, BitConverter.UInt16BitsToHalf(BitConverter.ToUInt16(q, 0)));
        Assert.Equal(new sbyte[] { 127, -64, 3, 0 }, q.Skip(2).Take(4).Select(b => (sbyte)b).ToArray());
        Assert.All(q.Skip(6).Take(28), b => Assert.Equal(0, b));
        var y = new float[64];
        Q8Block.Dequantize(q, y);
        for (int blk = 0; blk < 2; blk++)
        {
            float amax = x.Skip(blk * 32).Take(32).Max(MathF.Abs), d = amax / 127;
            float h = (float)BitConverter.UInt16BitsToHalf(BitConverter.ToUInt16(q, blk * Q8Block.Bytes));
            for (int i = blk * 32; i < blk * 32 + 32; i++)
                Assert.True(Math.Abs(y[i] - x[i]) <= d / 2 + 127 * Math.Abs(d - h) + 1e-9, $"{i}: {y[i]} vs {x[i]}");
        }
        var zero = new byte[Q8Block.Bytes];
        Q8Block.Quantize(new float[32], zero);
        Assert.All(zero, b => Assert.Equal(0, b));
        Assert.Throws<ArgumentException>(() => Q8Block.Quantize(new float[33], new byte[Q8Block.Bytes * 2]));
    }

    [Fact]
    public void RopeRows_BecomeInterleavedPairs()
    {
        // HF rows of a head: [re_0 … re_{d/2−1}, im_0 … im_{d/2−1}] → llama.cpp: [re_0, im_0, re_1, im_1, …].
        int heads = 2, headDim = 8;
        using var w = arange(heads * headDim, ScalarType.Float32).reshape(heads * headDim, 1).expand(heads * headDim, 3).contiguous();
        using var p = LlamaGguf.ToInterleavedRope(w, heads);
        var rows = p[.., 0].data<float>().ToArray();
        Assert.Equal(new float[] { 0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15 }, rows);
        Assert.Equal(new long[] { 16, 3 }, p.shape);
    }

    [Fact]
    public void Merges_ReproduceTheTokenizer()
    {
        // Byte-pair encoding driven only by the exported tokens and merge ranks gives the same ids as the tokenizer.
        var tok = Llama3Tokenizer.Default;
        var (tokens, _, merges) = LlamaGguf.Vocabulary(tok, tok.VocabSize);
        var rank = new Dictionary<(string, string), int>();
        for (int i = 0; i < merges.Count; i++)
        {
            int sp = merges[i].IndexOf(' ');
            rank.TryAdd((merges[i][..sp], merges[i][(sp + 1)..]), i);
        }
        var id = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < tok.BaseVocabSize; i++) id.TryAdd(tokens[i], i);
        var b2u = LlamaGguf.ByteToUnicode();
        var split = new Regex(Llama3Tokenizer.SplitPattern);
        string[] texts =
        {
            "The quick brown fox jumps over the lazy dog.",
            "  indented\tcode: for (int i = 0; i < 10; i++) { x += i * 3.14159; }\n\n",
            "Ünïcödé — 東京タワー, naïve café, emoji 🦙🦙 and numbers 1234567890",
            "supercalifragilisticexpialidocious antidisestablishmentarianism",
        };
        foreach (string text in texts)
        {
            var ids = new List<int>();
            foreach (Match m in split.Matches(text))
            {
                var parts = Encoding.UTF8.GetBytes(m.Value).Select(b => b2u[b].ToString()).ToList();
                while (parts.Count > 1)
                {
                    int best = -1, bestRank = int.MaxValue;
                    for (int i = 0; i + 1 < parts.Count; i++)
                        if (rank.TryGetValue((parts[i], parts[i + 1]), out int r) && r < bestRank) { bestRank = r; best = i; }
                    if (best < 0) break;
                    parts[best] += parts[best + 1];
                    parts.RemoveAt(best + 1);
                }
                ids.AddRange(parts.Select(p => id[p]));
            }
            Assert.Equal(tok.Encode(text), ids);
        }
    }
}

using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision.Tests;

public class CrossAttentionBlockTests
{
    const int Img = 128256;

    static Tensor Rms(Tensor x, Tensor w, double eps) => x * rsqrt(x.pow(2).mean(new long[] { -1 }, keepdim: true) + eps) * w;

    /// <summary>The block written out head by head (repeat-KV grouping, additive mask, explicit softmax).</summary>
    static Tensor Naive(CrossAttentionDecoderLayer l, LlamaConfig c, Tensor x, Tensor vision, bool[,] allowed, bool hf)
    {
        long t = x.shape[1], s = vision.shape[1];
        int h = c.NumHeads, kv = c.NumKvHeads, hd = c.HeadDim;
        var a = l.cross_attn;
        var xn = Rms(x[0], l.input_layernorm.weight, c.RmsNormEps);
        var q = Rms(xn.matmul(a.q_proj.weight.t()).view(t, h, hd), a.q_norm.weight, c.RmsNormEps);
        var k = Rms(vision[0].matmul(a.k_proj.weight.t()).view(s, kv, hd), a.k_norm.weight, c.RmsNormEps);
        var v = vision[0].matmul(a.v_proj.weight.t()).view(s, kv, hd);
        var bias = zeros(t, s);
        var r = zeros(t, 1);
        for (int i = 0; i < t; i++)
        {
            bool any = false;
            for (int j = 0; j < s; j++) any |= allowed[i, j];
            r[i, 0] = tensor(any ? 1f : 0f);
            if (any) for (int j = 0; j < s; j++) if (!allowed[i, j]) bias[i, j] = tensor(float.MinValue);
        }
        var heads = new List<Tensor>();
        for (int head = 0; head < h; head++)
        {
            int g = head / (h / kv);
            var sc = q.select(1, head).matmul(k.select(1, g).t()) / Math.Sqrt(hd) + bias;
            heads.Add(softmax(sc, -1).matmul(v.select(1, g)));
        }
        var attn = cat(heads, -1).matmul(a.o_proj.weight.t());
        if (!hf) attn = attn * r;
        var hid = x[0] + l.cross_attn_attn_gate.tanh() * attn;
        var m = l.mlp;
        var hn = Rms(hid, l.post_attention_layernorm.weight, c.RmsNormEps);
        var f = (nn.functional.silu(hn.matmul(m.gate_proj.weight.t())) * hn.matmul(m.up_proj.weight.t())).matmul(m.down_proj.weight.t());
        return (hid + l.cross_attn_mlp_gate.tanh() * (f * r)).unsqueeze(0);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void BlockMatchesHeadByHeadReference(bool hf)
    {
        var c = VisionPresets.Get("tiny-vision").Text;          // 4 query heads sharing 2 kv heads
        using var l = new CrossAttentionDecoderLayer(c, CPU, ScalarType.Float32);
        WeightInit.Apply(l, 5, 0.2);
        TestSupport.SetGates(l, 0.6);
        using (no_grad()) { l.cross_attn.q_norm.weight.normal_(1, 0.2); l.cross_attn.k_norm.weight.normal_(1, 0.2); }
        var ids = new[] { 5, Img, 6, Img, 7 };
        var ranges = new[] { CrossAttentionMask.ImageRanges(ids, Img) };
        var tiles = new[] { (IReadOnlyList<int>)new[] { 1, 2 } };
        const int tok = 3;
        using var _ = no_grad();
        var (mask, row) = CrossAttentionMask.Build(ranges, tiles, 2, 4, tok, 0, 5, c.NumHeads / c.NumKvHeads, ScalarType.Float32, CPU);
        var dense = CrossAttentionMask.Dense(ranges, tiles, 2, 4, 0, 5);
        var allowed = new bool[5, 2 * 4 * tok];
        for (int i = 0; i < 5; i++) for (int im = 0; im < 2; im++) for (int tl = 0; tl < 4; tl++) for (int q = 0; q < tok; q++)
            allowed[i, (im * 4 + tl) * tok + q] = dense[0, i, im, tl];
        var x = randn(1, 5, c.HiddenSize);
        var vision = randn(1, 2 * 4 * tok, c.HiddenSize);
        var media = new CrossAttentionInputs { VisionStates = vision, Mask = mask, RowMask = row, HfCompatible = hf };
        var ctx = new DecoderContext { Cos = zeros(1), Sin = zeros(1), Media = new Dictionary<string, object> { [CrossAttentionInputs.MediaKey] = media } };
        var got = l.Forward(x, ctx);
        var want = Naive(l, c, x, vision, allowed, hf);
        Assert.True(got.allclose(want, 1e-4, 1e-5), $"max diff {(got - want).abs().max().item<float>()}");
        // Row 0 precedes every image: identity under Meta semantics, changed under HF's.
        Assert.Equal(!hf, got[0, 0].allclose(x[0, 0], 1e-6, 1e-6));
    }

    [Fact]
    public void Bf16ModelRunsAndStaysCloseToF32()
    {
        using var m = TestSupport.Tiny(21);
        using var b16 = VisionLanguageModel.Create(m.Config, CPU, ScalarType.BFloat16);
        using (no_grad())
        {
            var src = m.named_parameters().ToDictionary(x => x.name, x => x.parameter);
            foreach (var (name, p) in b16.named_parameters()) p.copy_(src[name]);
        }
        var ids = VisionPrompt.EncodeInstruct(m.Tokenizer, "What is this?", 1);
        using var batch = m.Preprocessor.Batch(new[] { (IReadOnlyList<RgbImage>)new[] { TestSupport.Scene(150, 150, 9) } });
        using var _ = no_grad();
        using var idT = tensor(ids.Select(i => (long)i).ToArray(), new long[] { 1, ids.Count });
        using var a = m.Forward(idT, batch);
        using var b = b16.Forward(idT, batch);
        Assert.Equal(ScalarType.Float32, b.dtype);
        Assert.False(b.isnan().any().item<bool>());
        var cos = nn.functional.cosine_similarity(a.flatten(), b.flatten(), 0).item<float>();
        Assert.True(cos > 0.99, $"cosine {cos}");
    }
}

using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech.Tests;

public class EncoderTests
{
    static readonly ConformerConfig Small = new() { Dim = 48, NumLayers = 2, NumHeads = 4, FfnDim = 96, ConvKernel = 7, MaxFrames = 4096 };
    static readonly SpeechAdapterConfig SmallAdapter = new() { InputDim = 48, Dim = 64, NumHeads = 4, FfnDim = 96, OutputDim = 32, MaxFrames = 4096 };

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(3, 1, 1)]
    [InlineData(4, 1, 1)]
    [InlineData(5, 2, 1)]
    [InlineData(9, 3, 2)]
    [InlineData(13, 4, 2)]
    [InlineData(17, 5, 3)]
    [InlineData(6000, 1500, 750)]
    [InlineData(5999, 1500, 750)]
    public void StackingAndAdapterFrameCountsForOddLengths(int mel, int enc, int adapter)
    {
        Assert.Equal(enc, Small.OutputFrames(mel));
        Assert.Equal(adapter, SmallAdapter.OutputFrames(enc));
        using var _ = NewDisposeScope();
        using var sm = new SpeechModel(Small, SmallAdapter, CPU, ScalarType.Float32);
        sm.encoder.InitializeWeights(3); WeightInit.Apply(sm.adapter, 4);
        if (mel > 100) return;
        var (e, len) = sm.Forward(torch.randn(1, mel, 80), torch.tensor(new long[] { mel }));
        Assert.Equal(new long[] { 1, adapter, 32 }, e.shape);
        Assert.Equal(adapter, len.item<long>());
        Assert.Equal(adapter, sm.OutputFrames(mel));
    }

    [Fact]
    public void APaddedBatchRowEqualsTheUtteranceAlone()
    {
        using var _ = NewDisposeScope();
        using var sm = new SpeechModel(Small, SmallAdapter, CPU, ScalarType.Float32);
        sm.encoder.InitializeWeights(7, 0.2); WeightInit.Apply(sm.adapter, 8, 0.2);
        var lengths = new long[] { 37, 50, 23 };
        var items = lengths.Select((l, i) => torch.randn(new long[] { 1, l, 80 }, generator: new Generator((ulong)i + 1))).ToArray();
        // Pad with garbage, not zeros: the model itself must ignore it.
        var batch = torch.cat(items.Select(x => torch.cat(new[] { x, torch.randn(1, 50 - x.shape[1], 80) * 5 }, 1)).ToArray(), 0);
        using var noGrad = torch.no_grad();
        var (hb, lb) = sm.encoder.Forward(batch, torch.tensor(lengths));
        var (eb, leb) = sm.adapter.Forward(hb, lb);
        Assert.Equal(new long[] { 10, 13, 6 }, lb.data<long>().ToArray());
        Assert.Equal(new long[] { 5, 7, 3 }, leb.data<long>().ToArray());
        for (int i = 0; i < lengths.Length; i++)
        {
            var (h1, l1) = sm.encoder.Forward(items[i], torch.tensor(new[] { lengths[i] }));
            var (e1, _) = sm.adapter.Forward(h1, l1);
            long t4 = h1.shape[1], t8 = e1.shape[1];
            Assert.True(hb[i].narrow(0, 0, t4).allclose(h1[0], rtol: 1e-4, atol: 1e-5), $"encoder row {i}");
            Assert.True(eb[i].narrow(0, 0, t8).allclose(e1[0], rtol: 1e-4, atol: 1e-5), $"adapter row {i}");
            Assert.Equal(0, hb[i].narrow(0, t4, hb.shape[1] - t4).abs().sum().item<float>());
        }
    }

    [Fact]
    public void RotaryAttentionSeesRelativePositionsOnly()
    {
        using var _ = NewDisposeScope();
        using var attn = new RotarySelfAttention(48, 4, CPU, ScalarType.Float32);
        WeightInit.Apply(attn, 3, 0.3);
        using var rope = new RotaryEmbedding(12, 10000, null, 4096);
        using var noGrad = torch.no_grad();
        var x = torch.randn(1, 20, 48);
        (Tensor, Tensor) At(long from) => rope.Tables(torch.arange(from, from + 20, dtype: ScalarType.Int64).unsqueeze(0), (int)from + 19);
        var (c0, s0) = At(0); var (c9, s9) = At(900);
        var y0 = attn.Forward(x, c0, s0, null);
        // Shifting every position by the same offset changes nothing (scores depend on i − j only)…
        Assert.True(y0.allclose(attn.Forward(x, c9, s9, null), rtol: 1e-4, atol: 1e-4));
        // …but reordering the frames is not a plain permutation of the output, as it would be without rotary.
        var perm = torch.randperm(20, generator: new Generator(3));
        var yp = attn.Forward(x.index_select(1, perm), c0, s0, null);
        Assert.False(yp.allclose(y0.index_select(1, perm), rtol: 1e-3, atol: 1e-3));
        // Masked keys are ignored: garbage in padded frames does not reach the real ones.
        var valid = torch.arange(20).lt(12).view(1, 1, 1, 20);
        var x2 = torch.cat(new[] { x.narrow(1, 0, 12), torch.randn(1, 8, 48) * 10 }, 1);
        var a = attn.Forward(x, c0, s0, valid).narrow(1, 0, 12);
        var b = attn.Forward(x2, c0, s0, valid).narrow(1, 0, 12);
        Assert.True(a.allclose(b, rtol: 1e-5, atol: 1e-5));
    }

    [Fact]
    public void FullSizeEncoderAndAdapterHaveThePublishedParameterCounts()
    {
        var meta = torch.device(DeviceType.META);
        using var enc = new ConformerEncoder(new ConformerConfig(), meta);
        long d = 1536, f = 4096;
        long ffn = d * f + f + f * d + d;
        long attn = 4 * (d * d + d);
        long conv = (2 * d * d + 2 * d) + (d * 7 + d) + 2 * d + (d * d + d);
        long layer = 2 * ffn + attn + conv + 5 * 2 * d;
        long expected = 24 * layer + (320 * d + d) + 2 * 80;
        Assert.Equal(expected, enc.ParameterCount());
        Assert.InRange(enc.ParameterCount(), 0.995e9, 1.01e9);   // Llama 3 paper §8.2: ≈ 1B
        using var ad = new SpeechAdapter(new SpeechAdapterConfig(), meta);
        Assert.InRange(ad.ParameterCount(), 85e6, 105e6);       // Llama 3 paper §8.2: ≈ 100M
        using var full = SpeechLanguageModel.Create("llama3.1-8b-speech", meta);
        Assert.Equal(enc.ParameterCount() + ad.ParameterCount() + full.language_model.ParameterCount(), full.ParameterCount());
    }
}

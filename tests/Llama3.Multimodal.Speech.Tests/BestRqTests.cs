using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech.Tests;

public class BestRqTests
{
    [Fact]
    public void QuantizerIsDeterministicWithTheSpecShapes()
    {
        using var _ = NewDisposeScope();
        using var q1 = new RandomProjectionQuantizer(320, 16, 8192, 16, 42);
        using var q2 = new RandomProjectionQuantizer(320, 16, 8192, 16, 42);
        using var q3 = new RandomProjectionQuantizer(320, 16, 8192, 16, 43);
        Assert.Equal(new long[] { 16, 320, 16 }, q1.projections.shape);
        Assert.Equal(new long[] { 16, 8192, 16 }, q1.codebooks.shape);
        Assert.False(q1.projections.requires_grad); Assert.False(q1.codebooks.requires_grad);
        Assert.True(q1.codebooks.square().sum(-1).sqrt().sub(1).abs().max().item<float>() < 1e-5);
        double bound = Math.Sqrt(6.0 / 336);
        Assert.True(q1.projections.abs().max().item<float>() <= bound);
        Assert.Equal(bound / Math.Sqrt(3), q1.projections.std().item<float>(), 2);   // Xavier-uniform std
        var x = torch.randn(new long[] { 2, 30, 320 }, generator: new Generator(9));
        var a = q1.Quantize(x); var b = q2.Quantize(x); var c = q3.Quantize(x);
        Assert.Equal(new long[] { 2, 16, 30 }, a.shape);
        Assert.True(a.Same(b));
        Assert.False(a.Same(c));
        Assert.True(a.min().item<long>() >= 0 && a.max().item<long>() < 8192);
        // Cosine nearest: scaling the input does not change the codes; each code is the arg-max of cosine similarity.
        Assert.True(q1.Quantize(x * 3.7).Same(a));
        var z = nn.functional.normalize(x[0, 5].matmul(q1.projections[4]), p: 2, dim: -1);
        Assert.Equal(z.matmul(q1.codebooks[4].t()).argmax().item<long>(), a[0, 4, 5].item<long>());
    }

    [Fact]
    public void MaskingStatisticsMatchTheSpanModel()
    {
        using var _ = NewDisposeScope();
        var cfg = new BestRqConfig();
        var gen = new Generator(2024);
        // 256 × 4000 frames ≈ 32 000 independent spans: the sampling error of the fraction is ≈ 0.003.
        var mask = SpanMasker.Sample(torch.tensor(Enumerable.Repeat(4000L, 256).ToArray()), 4000, cfg.MaskStartProbability, cfg.MaskSpan, gen);
        var interior = mask.narrow(1, 31, 4000 - 31).to(ScalarType.Float64).mean().item<double>();
        Assert.Equal(1 - Math.Pow(0.975, 32), cfg.ExpectedMaskedFraction, 12);
        Assert.InRange(interior, cfg.ExpectedMaskedFraction - 0.01, cfg.ExpectedMaskedFraction + 0.01);
        // Frame t < 31 can only be covered by the t + 1 starts before it.
        var first = mask.select(1, 0).to(ScalarType.Float64).mean().item<double>();
        Assert.InRange(first, 0.0, 0.07);                                  // p = 0.025 for the very first frame
        // Padding is never masked.
        var m2 = SpanMasker.Sample(torch.tensor(new long[] { 100, 40 }), 100, 0.5, 32, gen);
        Assert.Equal(0, m2[1].narrow(0, 40, 60).sum().item<long>());
        Assert.True(m2[1].narrow(0, 0, 40).sum().item<long>() > 0);
    }

    static (Tensor Features, Tensor Lengths) SpeechBatch(LogMelSpectrogram lm)
    {
        var audio = AudioLoader.Load(TestAudio.SharedSpeech);
        return lm.ComputeBatch(new[] { audio[..32000], audio[16000..40000] });
    }

    [Fact]
    public void LossIsFiniteAndDecreasesUnderAdamW()
    {
        using var _ = NewDisposeScope();
        using var lm = new LogMelSpectrogram();
        var (feats, lens) = SpeechBatch(lm);
        var enc = new ConformerEncoder(new ConformerConfig { Dim = 64, NumLayers = 2, NumHeads = 4, FfnDim = 128, MaxFrames = 4096 }).InitializeWeights(1);
        enc.feature_norm.Fit(new[] { (feats, lens) });
        var obj = new BestRqObjective(enc, new BestRqConfig(), seed: 2);
        var opt = torch.optim.AdamW(obj.TrainableParameters(), lr: 2e-3);
        var gen = new Generator(11);
        var losses = new List<double>();
        for (int step = 0; step < 30; step++)
        {
            using var s = NewDisposeScope();
            opt.zero_grad();
            var r = obj.Loss(feats, lens, gen);
            Assert.True(r.MaskedFrames > 0 && r.MaskedFrames <= r.TotalFrames);
            r.Loss.backward();
            opt.step();
            losses.Add(r.Loss.item<float>());
        }
        Assert.All(losses, l => Assert.True(double.IsFinite(l)));
        Assert.InRange(losses[0], Math.Log(8192) - 1.5, Math.Log(8192) + 1.5); // near uniform at the start
        double head = losses.Take(5).Average(), tail = losses.Skip(25).Average();
        Assert.True(tail < head - 1.0, $"loss went {head:F3} → {tail:F3}");
        Assert.False(obj.quantizer.projections.requires_grad);
        Assert.Null(obj.quantizer.projections.grad);
    }

    [Fact]
    public void FeatureStatisticsNormalisePerBin()
    {
        using var _ = NewDisposeScope();
        using var lm = new LogMelSpectrogram();
        var (feats, lens) = SpeechBatch(lm);
        var norm = new FeatureNormalizer(80, CPU);
        norm.Fit(new[] { (feats, lens) });
        var x = norm.forward(feats[0].unsqueeze(0).narrow(1, 0, lens[0].item<long>()));
        var y = norm.forward(feats[1].unsqueeze(0).narrow(1, 0, lens[1].item<long>()));
        var all = torch.cat(new[] { x, y }, 1).squeeze(0);                        // [frames, 80]
        Assert.True(all.mean(new long[] { 0 }).abs().max().item<float>() < 1e-3);
        var std = all.std(0);
        Assert.True(std.sub(1).abs().max().item<float>() < 0.02, $"std range {std.min().item<float>()}…{std.max().item<float>()}");
    }

    [Fact]
    public void LongUtterancesAreCroppedToSixThousandFrames()
    {
        using var _ = NewDisposeScope();
        var f = torch.arange(7000 * 2, dtype: ScalarType.Float32).view(7000, 2);
        var c = BestRqObjective.RandomCrop(f, 6000, new Generator(5));
        Assert.Equal(new long[] { 6000, 2 }, c.shape);
        long start = (long)c[0, 0].item<float>() / 2;
        Assert.InRange(start, 0, 1000);
        Assert.True(c.Same(f.narrow(0, start, 6000)));
        Assert.Equal(new long[] { 300, 2 }, BestRqObjective.RandomCrop(f.narrow(0, 0, 300)).shape);
    }

    [Fact]
    public void PretrainingStateRoundTripsAndSeedsTheSpeechModel()
    {
        using var _ = NewDisposeScope();
        var cfg = SpeechPresets.Get("tiny-speech");
        var enc = new ConformerEncoder(cfg.Encoder).InitializeWeights(21);
        using (torch.no_grad()) enc.feature_norm.mean.fill_(0.5);
        var obj = new BestRqObjective(enc, new BestRqConfig { NumCodebooks = 2, CodebookSize = 64 }, seed: 3);
        string dir = TestAudio.TempDir();
        obj.Save(dir);
        var enc2 = new ConformerEncoder(cfg.Encoder).InitializeWeights(99);
        var obj2 = new BestRqObjective(enc2, new BestRqConfig { NumCodebooks = 2, CodebookSize = 64, QuantizerSeed = 7 }, seed: 4);
        obj2.Load(dir);
        foreach (var ((n1, p1), (_, p2)) in enc.named_parameters().Zip(enc2.named_parameters())) Assert.True(p1.Same(p2), n1);
        foreach (var ((n1, p1), (_, p2)) in obj.named_parameters().Zip(obj2.named_parameters())) Assert.True(p1.Same(p2), n1);
        using var m = SpeechLanguageModel.Create(cfg, seed: 1);
        m.LoadEncoder(dir);
        Assert.True(m.speech_model.encoder.input_proj.weight.Same(enc.input_proj.weight));
        Assert.Equal(0.5f, m.speech_model.encoder.feature_norm.mean[0].item<float>());
        var wrong = new BestRqObjective(new ConformerEncoder(cfg.Encoder with { NumLayers = 3 }).InitializeWeights(1), new BestRqConfig { NumCodebooks = 2, CodebookSize = 64 });
        Assert.Contains("layers.2", Assert.Throws<Llama3.Multimodal.Text.CheckpointFormatException>(() => wrong.Load(dir)).Message);
    }
}

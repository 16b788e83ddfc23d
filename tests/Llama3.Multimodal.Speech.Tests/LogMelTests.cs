using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech.Tests;

public class LogMelTests
{
    [Fact]
    public void FiltersMatchTheWhisperAnchors()
    {
        var w = MelFilterBank.Create(16000, 400, 80, 0, 8000);
        Assert.Equal(45.245640471924965, MelFilterBank.HzToMel(8000), 12);
        Assert.Equal(15.0, MelFilterBank.HzToMel(1000), 12);
        Assert.Equal(0.0, w[0, 0]); Assert.Equal(0.02486259, w[0, 1], 7); Assert.Equal(0.0, w[0, 2]);
        Assert.Equal(0.00199082, w[1, 1], 7); Assert.Equal(0.02287177, w[1, 2], 7); Assert.Equal(0.0, w[1, 3]);
        var nz = Enumerable.Range(0, 201).Where(k => w[79, k] > 0).ToArray();
        Assert.Equal(186, nz.First()); Assert.Equal(199, nz.Last());
        Assert.Equal(192, nz.MaxBy(k => w[79, k]));
        Assert.Equal(0.00316471, w[79, 192], 7);
        var r = LogMelReference.Filters();
        for (int m = 0; m < 80; m++) for (int k = 0; k < 201; k++) Assert.Equal(r[m, k], w[m, k], 12);
    }

    [Fact]
    public void SilenceIsMinusOnePointFiveEverywhere()
    {
        using var lm = new LogMelSpectrogram();
        using var f = lm.Compute(new float[16000]);
        Assert.Equal(new long[] { 100, 80 }, f.shape);
        Assert.Equal(-1.5f, f.min().item<float>(), 6);
        Assert.Equal(-1.5f, f.max().item<float>(), 6);
    }

    [Theory]
    [InlineData(1000, 1.0, 26, 1.590167)]
    [InlineData(1000, 0.5, 26, 1.439652)]
    [InlineData(2000, 1.0, 44, 1.542459)]
    public void PureToneLandsInTheRightBandWithTheKnownValue(double hz, double amp, int band, double value)
    {
        using var lm = new LogMelSpectrogram();
        using var f = lm.Compute(TestAudio.Tone(hz, 16000, 1.0, amp));
        using var interior = f.narrow(0, 10, 80);                      // [80 frames, 80 bins]
        using var peakBands = interior.argmax(1);
        Assert.All(peakBands.data<long>().ToArray(), b => Assert.Equal(band, b));
        Assert.Equal(value, interior[.., band].mean().item<float>(), 3);
        Assert.True(f.max().item<float>() - f.min().item<float>() <= 2.0f + 1e-5f);
    }

    [Theory]
    [InlineData(159, 0)]
    [InlineData(160, 1)]
    [InlineData(199, 1)]
    [InlineData(401, 2)]
    [InlineData(16_001, 100)]
    [InlineData(16_319, 101)]
    public void FrameCountIsFloorOfSamplesOverHop(int samples, int frames)
    {
        Assert.Equal(frames, LogMelSpectrogram.FrameCount(samples));
        if (frames == 0) return;
        using var lm = new LogMelSpectrogram();
        using var f = lm.Compute(TestAudio.Tone(300, 16000, samples / 16000.0 + 1e-9)[..samples]);
        Assert.Equal(frames, f.shape[0]);
    }

    [Fact]
    public void MatchesTheDoublePrecisionReferenceOnSpeech()
    {
        var audio = AudioLoader.Load(TestAudio.SharedSpeech)[..24_000]; // 1.5 s of espeak-ng speech
        var reference = LogMelReference.Compute(audio);
        using var lm = new LogMelSpectrogram();
        using var f = lm.Compute(audio);
        var got = f.data<float>().ToArray();
        int t = reference.GetLength(0);
        Assert.Equal(t, (int)f.shape[0]);
        double maxErr = 0;
        for (int i = 0; i < t; i++) for (int m = 0; m < 80; m++) maxErr = Math.Max(maxErr, Math.Abs(got[i * 80 + m] - reference[i, m]));
        Assert.True(maxErr < 2e-4, $"max abs error {maxErr}");
    }

    [Fact]
    public void BatchPadsAndReportsLengths()
    {
        using var lm = new LogMelSpectrogram();
        var (feats, lens) = lm.ComputeBatch(new[] { TestAudio.Tone(500, 16000, 0.5), TestAudio.Tone(500, 16000, 0.25) });
        using (feats) using (lens)
        {
            Assert.Equal(new long[] { 2, 50, 80 }, feats.shape);
            Assert.Equal(new long[] { 50, 25 }, lens.data<long>().ToArray());
            using var alone = lm.Compute(TestAudio.Tone(500, 16000, 0.25));
            Assert.True(feats[1].narrow(0, 0, 25).allclose(alone));
        }
    }
}

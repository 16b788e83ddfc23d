namespace Llama3.Multimodal.Speech.Tests;

public class ResamplerTests
{
    /// <summary>Magnitude of the Hann-windowed DFT of <paramref name="x"/> at <paramref name="hz"/>, normalised so a unit sine gives ≈ 1.</summary>
    static double Magnitude(float[] x, int rate, double hz)
    {
        double re = 0, im = 0, wsum = 0;
        for (int i = 0; i < x.Length; i++)
        {
            double w = 0.5 - 0.5 * Math.Cos(2 * Math.PI * i / x.Length);
            double a = 2 * Math.PI * hz * i / rate;
            re += w * x[i] * Math.Cos(a); im -= w * x[i] * Math.Sin(a);
            wsum += w;
        }
        return 2 * Math.Sqrt(re * re + im * im) / wsum;
    }

    static float[] Middle(float[] x, int margin) => x[margin..^margin];

    [Fact]
    public void OneKilohertzToneStaysAtOneKilohertzAfter44100To16000()
    {
        var y = Resampler.Resample(TestAudio.Tone(1000, 44100, 1.0), 44100, 16000);
        Assert.Equal(16000, y.Length);
        var mid = Middle(y, 800);
        double best = 0, bestHz = 0;
        for (double hz = 100; hz < 8000; hz += 10)
        {
            double m = Magnitude(mid, 16000, hz);
            if (m > best) { best = m; bestHz = hz; }
        }
        Assert.Equal(1000, bestHz);
        Assert.InRange(best, 0.98, 1.02);
        // Sample-exact: compare with the ideal 1 kHz sine at 16 kHz away from the edges.
        var ideal = TestAudio.Tone(1000, 16000, 1.0);
        for (int i = 800; i < 15200; i++) Assert.True(Math.Abs(y[i] - ideal[i]) < 2e-3, $"sample {i}: {y[i]} vs {ideal[i]}");
    }

    [Theory]
    [InlineData(11000)]
    [InlineData(9000)]
    [InlineData(20000)]
    public void ContentAboveTheNewNyquistIsSuppressed(int hz)
    {
        var y = Middle(Resampler.Resample(TestAudio.Tone(hz, 44100, 1.0), 44100, 16000), 800);
        double rms = Math.Sqrt(y.Sum(v => (double)v * v) / y.Length);
        Assert.True(rms < 1e-3, $"{hz} Hz leaked through with RMS {rms} (a naive decimator would alias it at full level)");
    }

    [Fact]
    public void PassbandToneKeepsItsLevel()
    {
        var y = Middle(Resampler.Resample(TestAudio.Tone(7000, 48000, 1.0), 48000, 16000), 800);
        double rms = Math.Sqrt(y.Sum(v => (double)v * v) / y.Length);
        Assert.InRange(rms, 0.70, 0.714);
        Assert.InRange(Magnitude(y, 16000, 7000), 0.98, 1.02);
    }

    [Fact]
    public void UpsamplingKeepsFrequencyAndConstantsStayConstant()
    {
        var y = Resampler.Resample(TestAudio.Tone(440, 8000, 0.5), 8000, 16000);
        Assert.Equal(8000, y.Length);
        var ideal = TestAudio.Tone(440, 16000, 0.5);
        for (int i = 500; i < 7500; i++) Assert.True(Math.Abs(y[i] - ideal[i]) < 2e-3, $"sample {i}");
        var dc = Resampler.Resample(Enumerable.Repeat(0.25f, 22050).ToArray(), 22050, 16000);
        for (int i = 400; i < dc.Length - 400; i++) Assert.Equal(0.25f, dc[i], 4);
        Assert.Equal(11610, new Resampler(22050, 16000).OutputLength(16000)); // ⌈16000·320/441⌉
    }
}

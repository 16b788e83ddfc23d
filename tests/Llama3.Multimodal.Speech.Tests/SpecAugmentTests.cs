using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech.Tests;

public class SpecAugmentTests
{
    static (Tensor Out, bool[] Masked) Run(long seed, long[] lengths, long t = 200, long bins = 80)
    {
        var x = torch.arange(lengths.Length * t * bins, dtype: ScalarType.Float32).reshape(lengths.Length, t, bins).add_(1.0.ToScalar());
        var fill = torch.full(new long[] { bins }, -7f);
        using var gen = new Generator((ulong)seed, CPU);
        var y = SpecAugment.Apply(x, torch.tensor(lengths), fill, gen);
        return (y, y.eq((-7f).ToScalar()).data<bool>().ToArray());
    }

    [Fact]
    public void MasksBandsAndSpansWithinEachUtteranceAndIsSeeded()
    {
        long[] lengths = { 200, 120 };
        var (a, m) = Run(3, lengths);
        var (b, _) = Run(3, lengths);
        var (c, _) = Run(4, lengths);
        Assert.True(a.equal(b).all().item<bool>());
        Assert.False(a.equal(c).all().item<bool>());
        for (int i = 0; i < lengths.Length; i++)
        {
            // Padding frames are never masked; a masked column (bin) is masked on every real frame.
            for (long t = lengths[i]; t < 200; t++) for (int f = 0; f < 80; f++) Assert.False(m[(i * 200 + t) * 80 + f]);
            var fullBins = Enumerable.Range(0, 80).Where(f => Enumerable.Range(0, (int)lengths[i]).All(t => m[(i * 200 + t) * 80 + f])).Count();
            Assert.InRange(fullBins, 0, 2 * SpecAugment.MaxFrequencyWidth);
            // Frames masked across all bins come only from the time masks: at most 10 × 5 % of the utterance.
            var fullFrames = Enumerable.Range(0, (int)lengths[i]).Count(t => Enumerable.Range(0, 80).All(f => m[(i * 200 + t) * 80 + f]));
            Assert.InRange(fullFrames, 0, SpecAugment.TimeMasks * (int)(SpecAugment.MaxTimeRatio * lengths[i]) + (fullBins == 80 ? (int)lengths[i] : 0));
            // Unmasked cells keep their values.
            var orig = torch.arange(2 * 200 * 80, dtype: ScalarType.Float32).reshape(2, 200, 80).add_(1.0.ToScalar());
            Assert.True(a[i].masked_select(a[i].ne((-7f).ToScalar())).equal(orig[i].masked_select(a[i].ne((-7f).ToScalar()))).all().item<bool>());
        }
        Assert.Contains(true, m);
    }

    [Fact]
    public void RejectsWrongShapes()
    {
        using var gen = new Generator(1, CPU);
        Assert.Throws<ArgumentException>(() => SpecAugment.Apply(torch.zeros(10, 80), torch.tensor(new long[] { 10 }), torch.zeros(80), gen));
        Assert.Throws<ArgumentException>(() => SpecAugment.Apply(torch.zeros(1, 10, 80), torch.tensor(new long[] { 10 }), torch.zeros(40), gen));
    }
}

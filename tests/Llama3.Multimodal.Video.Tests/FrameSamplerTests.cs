namespace Llama3.Multimodal.Video.Tests;

public class FrameSamplerTests
{
    [Fact]
    public void LongClipSpreadsIndicesFromFirstToLastFrame()
    {
        int[] idx = FrameSampler.UniformIndices(1801, 64);
        Assert.Equal(64, idx.Length);
        Assert.Equal(0, idx[0]);
        Assert.Equal(1800, idx[^1]);
        // 1800/63 = 28.571…: index i = round(28.571·i)
        Assert.Equal(new[] { 0, 29, 57, 86, 114, 143 }, idx[..6]);
        for (int i = 1; i < idx.Length; i++) Assert.InRange(idx[i] - idx[i - 1], 28, 29);
    }

    [Fact]
    public void ClipOfExactlyNFramesTakesEveryFrameOnce()
    {
        Assert.Equal(Enumerable.Range(0, 64).ToArray(), FrameSampler.UniformIndices(64, 64));
    }

    [Fact]
    public void ShortClipRepeatsFramesEvenlyInOrder()
    {
        int[] idx = FrameSampler.UniformIndices(10, 64);
        Assert.Equal(64, idx.Length);
        Assert.Equal(0, idx[0]);
        Assert.Equal(9, idx[^1]);
        Assert.Equal(Enumerable.Range(0, 10), idx.Distinct());          // every frame used, in order
        var counts = idx.GroupBy(i => i).Select(g => g.Count()).ToArray();
        Assert.All(counts, c => Assert.InRange(c, 3, 8));                 // 64/10 = 6.4 per frame, ends get half a share
        Assert.Equal(new[] { 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 2 }, idx[..12]);
    }

    [Fact]
    public void SingleFrameClipRepeatsItAndSingleSampleTakesTheMiddle()
    {
        Assert.All(FrameSampler.UniformIndices(1, 64), i => Assert.Equal(0, i));
        Assert.Equal(new[] { 49 }, FrameSampler.UniformIndices(100, 1));
    }

    [Fact]
    public void InvalidCountsAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => FrameSampler.UniformIndices(0, 64));
        Assert.Throws<ArgumentOutOfRangeException>(() => FrameSampler.UniformIndices(10, 0));
    }
}

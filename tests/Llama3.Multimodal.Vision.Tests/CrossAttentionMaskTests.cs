using Llama3.Multimodal.Vision;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision.Tests;

public class CrossAttentionMaskTests
{
    const int Img = 128256;
    const int Open = CrossAttentionMask.Open;

    [Fact]
    public void RangesFollowReferenceRules()
    {
        Assert.Empty(CrossAttentionMask.ImageRanges(new[] { 1, 2, 3 }, Img));
        Assert.Equal(new[] { (2, Open) }, CrossAttentionMask.ImageRanges(new[] { 1, 2, Img, 3 }, Img));
        // Images at 1, 4, 5: image 0 sees [1, 4); images 1 and 2 are adjacent, so image 1 inherits the open end of image 2.
        Assert.Equal(new[] { (1, 4), (4, Open), (5, Open) },
            CrossAttentionMask.ImageRanges(new[] { 7, Img, 8, 9, Img, Img, 10, 11 }, Img));
        // Three adjacent images at the start: all share the run's range.
        Assert.Equal(new[] { (0, Open), (1, Open), (2, Open) }, CrossAttentionMask.ImageRanges(new[] { Img, Img, Img, 5 }, Img));
        // Separated images: a later text row sees only the most recent image.
        Assert.Equal(new[] { (1, 3), (3, Open) }, CrossAttentionMask.ImageRanges(new[] { 0, Img, 5, Img, 6 }, Img));
    }

    [Fact]
    public void DenseMaskHidesTextBeforeFirstImageAndPaddedTiles()
    {
        var ids = new[] { 7, 8, Img, 9, Img, 10 };          // text before the first image at rows 0 and 1
        var ranges = new[] { CrossAttentionMask.ImageRanges(ids, Img) };
        var tiles = new[] { (IReadOnlyList<int>)new[] { 2, 4 } };
        var d = CrossAttentionMask.Dense(ranges, tiles, 2, 4, 0, 6);
        bool Row(int t, int i, int k) => d[0, t, i, k];
        for (int t = 0; t < 2; t++) for (int i = 0; i < 2; i++) for (int k = 0; k < 4; k++) Assert.False(Row(t, i, k));
        for (int t = 2; t < 4; t++)
        {
            Assert.True(Row(t, 0, 0)); Assert.True(Row(t, 0, 1)); Assert.False(Row(t, 0, 2)); Assert.False(Row(t, 0, 3));
            for (int k = 0; k < 4; k++) Assert.False(Row(t, 1, k));
        }
        for (int t = 4; t < 6; t++)
        {
            for (int k = 0; k < 4; k++) Assert.False(Row(t, 0, k));
            for (int k = 0; k < 4; k++) Assert.True(Row(t, 1, k));
        }
        // Generated rows (beyond the prompt) keep seeing the last image.
        var later = CrossAttentionMask.Dense(ranges, tiles, 2, 4, 40, 1);
        Assert.True(later[0, 0, 1, 3]);
        Assert.False(later[0, 0, 0, 0]);
    }

    [Fact]
    public void BuiltMaskIsFoldedForGqaAndRowsWithoutImageAttendEverywhere()
    {
        var ids = new[] { 7, Img, 9 };
        var ranges = new[] { CrossAttentionMask.ImageRanges(ids, Img), Array.Empty<(int, int)>() };
        var tiles = new[] { (IReadOnlyList<int>)new[] { 1 }, Array.Empty<int>() };
        var (mask, row) = CrossAttentionMask.Build(ranges, tiles, 1, 4, 3, 0, 3, 2, ScalarType.Float32, CPU);
        Assert.Equal(new long[] { 2, 1, 6, 12 }, mask.shape);
        Assert.Equal(new float[] { 0, 1, 1, 0, 0, 0 }, row.data<float>().ToArray());
        var m = mask.to_type(ScalarType.Int32);
        // Row 0 of prompt 0 sees no image: all true (uniform, defined softmax); rows 1-2 see tile 0's 3 tokens only.
        Assert.Equal(12, m[0, 0, 0].sum().item<long>());
        Assert.Equal(new[] { 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, m[0, 0, 1].data<int>().ToArray());
        // Folded layout: query head group r repeats the T rows.
        Assert.True(mask[0, 0, 4].equal(mask[0, 0, 1]).all().item<bool>());
        Assert.Equal(12 * 6, m[1].sum().item<long>());
    }
}

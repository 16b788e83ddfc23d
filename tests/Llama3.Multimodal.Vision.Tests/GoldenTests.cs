using Llama3.Multimodal.Vision;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision.Tests;

public class GoldenTests
{
    /// <summary>A procedural image (no renderer involved, so identical everywhere).</summary>
    internal static RgbImage Pattern(int w, int h)
    {
        var p = new byte[w * h * 3];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int i = (y * w + x) * 3;
                p[i] = (byte)(x * 255 / Math.Max(1, w - 1));
                p[i + 1] = (byte)(y * 255 / Math.Max(1, h - 1));
                p[i + 2] = (byte)((x / 16 + y / 16) % 2 * 200);
            }
        return new RgbImage(w, h, p);
    }

    [Fact]
    public void TinyVisionLogitsAreStable()
    {
        // Regression values of this implementation (seed 1, all gates 0.7–0.9, 180×120 pattern image, Meta semantics);
        // they change only when the numerics change. No external reference was available to produce them.
        using var m = TestSupport.Tiny(1);
        var ids = VisionPrompt.EncodeInstruct(m.Tokenizer, "Describe the picture.", 1);
        using var batch = m.Preprocessor.Batch(new[] { (IReadOnlyList<RgbImage>)new[] { Pattern(180, 120) } });
        using var _ = no_grad();
        using var logits = m.Forward(tensor(ids.Select(i => (long)i).ToArray(), new long[] { 1, ids.Count }), batch);
        var last = logits[0, ids.Count - 1];
        var got = new[] { 0L, 1000L, 128000L }.Select(i => last[i].item<float>()).ToArray();
        var expected = Environment.GetEnvironmentVariable("L3MM_PRINT_GOLDEN") is null ? Golden : null;
        if (expected is null) { Console.WriteLine(string.Join(", ", got.Select(g => g.ToString("R") + "f"))); return; }
        for (int i = 0; i < got.Length; i++) Assert.Equal(expected[i], got[i], 3);
    }

    static readonly float[] Golden = { -0.1403798f, -0.17482871f, 0.42247418f };

    [Theory]
    [InlineData(560, 560, 1, new long[] { 1, 0, 0, 0 })]       // square
    [InlineData(2000, 500, 4, new long[] { 1, 1, 1, 1 })]      // wide
    [InlineData(500, 1400, 7, new long[] { 1, 1, 1, 0 })]      // tall
    [InlineData(3, 2, 1, new long[] { 1, 0, 0, 0 })]           // tiny
    [InlineData(8000, 8000, 6, new long[] { 1, 1, 1, 1 })]     // huge
    public void AspectRatioIdsAndMasks(int w, int h, int id, long[] mask)
    {
        var pre = new ImagePreprocessor(560);
        var grid = ImagePreprocessor.ChooseGrid(h, w, 560, pre.AspectRatios);
        Assert.Equal(id, pre.AspectRatioId(grid));
        var tiles = grid.H * grid.W;
        Assert.Equal(mask, Enumerable.Range(0, 4).Select(k => k < tiles ? 1L : 0L).ToArray());
        if ((long)w * h <= 4_000_000)
        {
            using var b = pre.Batch(new[] { (IReadOnlyList<RgbImage>)new[] { RgbImage.Filled(w, h, 1, 2, 3) } });
            Assert.Equal(mask, b.AspectRatioMask.data<long>().ToArray());
            Assert.Equal(id, b.AspectRatioIds.item<long>());
        }
    }
}

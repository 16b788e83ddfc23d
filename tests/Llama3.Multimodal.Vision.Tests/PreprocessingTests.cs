using Llama3.Multimodal.Vision;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision.Tests;

public class PreprocessingTests
{
    static readonly IReadOnlyList<(int H, int W)> Ratios = VisionConfig.AspectRatiosFor(4);

    // Worked examples of the Llama 3.2 Vision tiling (HF MllamaImageProcessor: get_optimal_tiled_canvas, resize,
    // aspect ratio ids): input W×H → grid (h, w), resized H×W, aspect id; for T = 560 and T = 448.
    [Theory]
    [InlineData(300, 90, 560, 1, 1, 168, 560, 1)]
    [InlineData(800, 600, 560, 2, 2, 600, 800, 6)]
    [InlineData(640, 480, 560, 1, 2, 480, 640, 2)]
    [InlineData(1000, 300, 560, 1, 2, 300, 1000, 2)]
    [InlineData(200, 200, 560, 1, 1, 560, 560, 1)]
    [InlineData(100, 1000, 560, 2, 1, 1000, 100, 5)]
    [InlineData(1920, 1080, 560, 2, 2, 630, 1120, 6)]
    [InlineData(4000, 1000, 560, 1, 4, 560, 2240, 4)]
    [InlineData(561, 560, 560, 1, 2, 560, 561, 2)]
    [InlineData(300, 90, 448, 1, 1, 134, 448, 1)]
    [InlineData(800, 600, 448, 2, 2, 600, 800, 6)]
    [InlineData(640, 480, 448, 2, 2, 480, 640, 6)]
    [InlineData(1000, 300, 448, 1, 3, 300, 1000, 3)]
    [InlineData(200, 200, 448, 1, 1, 448, 448, 1)]
    [InlineData(100, 1000, 448, 3, 1, 1000, 100, 7)]
    [InlineData(1920, 1080, 448, 2, 2, 504, 896, 6)]
    [InlineData(4000, 1000, 448, 1, 4, 448, 1792, 4)]
    [InlineData(561, 560, 448, 2, 2, 560, 561, 6)]
    public void CanvasAndResizeMatchWorkedExamples(int w, int h, int tile, int gh, int gw, int rh, int rw, int id)
    {
        var grid = ImagePreprocessor.ChooseGrid(h, w, tile, Ratios);
        Assert.Equal((gh, gw), grid);
        Assert.Equal((rh, rw), ImagePreprocessor.FitToCanvas(h, w, tile, gh * tile, gw * tile));
        Assert.Equal(id, new ImagePreprocessor(tile).AspectRatioId(grid));
    }

    [Fact]
    public void NormalisationOfKnownPixelValues()
    {
        double[][] expected =
        {
            new[] { -1.792263, -1.752097, -1.480220 },
            new[] { 1.930336, 2.074884, 2.145897 },
            new[] { 0.076336, 0.168897, 0.339949 },
        };
        int[] values = { 0, 255, 128 };
        for (int i = 0; i < 3; i++)
            for (int c = 0; c < 3; c++)
                Assert.Equal(expected[i][c], ImagePreprocessor.NormalizedValue(values[i], c), 5);
    }

    static RgbImage Gray(int w, int h, params byte[] values)
    {
        var p = new byte[w * h * 3];
        for (int i = 0; i < w * h; i++) p[3 * i] = p[3 * i + 1] = p[3 * i + 2] = values[i];
        return new RgbImage(w, h, p);
    }

    [Fact]
    public void PilBilinearDownscaleUsesWideTriangleFilter()
    {
        // 4 → 2: scale 2, support 2; taps (3/7, 3/7, 1/7) and (1/7, 3/7, 3/7):
        // (0·3 + 100·3 + 200)/7 = 71.43 → 71; (100 + 200·3 + 255·3)/7 = 209.29 → 209. A 2×2 bilinear would give 50 and 227.
        var r = PilBilinear.Resize(Gray(4, 1, 0, 100, 200, 255), 2, 1);
        Assert.Equal(new byte[] { 71, 71, 71, 209, 209, 209 }, r.Pixels);
        var v = PilBilinear.Resize(Gray(1, 4, 0, 100, 200, 255), 1, 2);
        Assert.Equal(new byte[] { 71, 71, 71, 209, 209, 209 }, v.Pixels);
    }

    [Fact]
    public void PilBilinearUpscaleClampsAtEdgesAndRoundsHalfDown()
    {
        // 2 → 4: centres 0.25, 0.75, 1.25, 1.75; edge outputs use one tap; inner ones weights (.75, .25) and (.25, .75):
        // 25.5 and 75.5 in 22-bit fixed point, plus the ½ rounding offset, floor to 25 and 75.
        var r = PilBilinear.Resize(Gray(2, 1, 0, 100), 4, 1);
        Assert.Equal(new byte[] { 0, 25, 75, 100 }, r.Pixels.Where((_, i) => i % 3 == 0).ToArray());
    }

    [Fact]
    public void PilBilinearSeparableTwoPass()
    {
        // 2×2 → 1×1: horizontal pass averages each row (rounded to uint8), then vertical averages the two rows.
        var img = Gray(2, 2, 10, 21, 100, 201);
        var r = PilBilinear.Resize(img, 1, 1);
        // rows: (10+21)/2 = 15.5 → 16 (uint8 intermediate), (100+201)/2 = 150.5 → 151; then (16+151)/2 = 83.5 → 84.
        Assert.Equal(84, r.Pixels[0]);
    }

    [Fact]
    public void ProcessPadsWithBlackBeforeNormalising()
    {
        var pre = new ImagePreprocessor(560);
        var img = RgbImage.Filled(300, 90, 255, 255, 255);
        using var p = pre.Process(img);
        Assert.Equal(new long[] { 1, 3, 560, 560 }, p.Tiles.shape);
        Assert.Equal((168, 560), p.Resized);
        Assert.Equal(1, p.AspectRatioId);
        for (int c = 0; c < 3; c++)
        {
            Assert.Equal(ImagePreprocessor.NormalizedValue(255, c), p.Tiles[0, c, 100, 300].item<float>());
            Assert.Equal(ImagePreprocessor.NormalizedValue(255, c), p.Tiles[0, c, 167, 559].item<float>());
            Assert.Equal(ImagePreprocessor.NormalizedValue(0, c), p.Tiles[0, c, 168, 0].item<float>());
            Assert.Equal(ImagePreprocessor.NormalizedValue(0, c), p.Tiles[0, c, 559, 559].item<float>());
        }
    }

    [Fact]
    public void TilesAreRowMajor()
    {
        // 16×16 image with four coloured quadrants at tile size 8 → grid (2, 2) without resizing.
        var px = new byte[16 * 16 * 3];
        byte[][] colours = { new byte[] { 10, 0, 0 }, new byte[] { 20, 0, 0 }, new byte[] { 30, 0, 0 }, new byte[] { 40, 0, 0 } };
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 16; x++)
            {
                var col = colours[(y / 8) * 2 + x / 8];
                Array.Copy(col, 0, px, (y * 16 + x) * 3, 3);
            }
        var pre = new ImagePreprocessor(8);
        using var p = pre.Process(new RgbImage(16, 16, px));
        Assert.Equal((2, 2), p.Grid);
        Assert.Equal(6, p.AspectRatioId);
        for (int t = 0; t < 4; t++) Assert.Equal(ImagePreprocessor.NormalizedValue(10 * (t + 1), 0), p.Tiles[t, 0, 3, 3].item<float>());
    }

    [Fact]
    public void BatchesPromptsWithDifferentImageCounts()
    {
        var pre = new ImagePreprocessor(8);
        var wide = TestSupport.Scene(20, 8, 1);   // (1, 3) and (1, 4) both give scale 1: the smaller canvas wins
        var tall = TestSupport.Scene(8, 30, 2);
        var batch = pre.Batch(new[] { (IReadOnlyList<RgbImage>)new[] { wide, tall }, Array.Empty<RgbImage>() });
        using (batch)
        {
            Assert.Equal(new long[] { 2, 2, 4, 3, 8, 8 }, batch.PixelValues.shape);
            var gWide = ImagePreprocessor.ChooseGrid(8, 20, 8, pre.AspectRatios);
            var gTall = ImagePreprocessor.ChooseGrid(30, 8, 8, pre.AspectRatios);
            Assert.Equal((1, 3), gWide);
            Assert.Equal((4, 1), gTall);
            Assert.Equal(new long[] { 3, 8, 0, 0 }, batch.AspectRatioIds.data<long>().ToArray());
            Assert.Equal(new long[] { 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0 }, batch.AspectRatioMask.data<long>().ToArray());
            Assert.Equal(new[] { 3, 4 }, batch.NumTiles[0]);
            Assert.Empty(batch.NumTiles[1]);
            // Missing tiles and images are exactly zero; real tiles are not.
            Assert.Equal(0, batch.PixelValues[0, 0, 3].abs().sum().item<float>());
            Assert.Equal(0, batch.PixelValues[1].abs().sum().item<float>());
            Assert.True(batch.PixelValues[0, 0, 2].abs().sum().item<float>() > 0);
        }
    }

    [Fact]
    public void HugeAndTinyImages()
    {
        var pre = new ImagePreprocessor(560);
        Assert.Equal((2, 2), ImagePreprocessor.ChooseGrid(5000, 5000, 560, pre.AspectRatios));
        Assert.Equal((1120, 1120), ImagePreprocessor.FitToCanvas(5000, 5000, 560, 1120, 1120));
        Assert.Equal((1, 1), ImagePreprocessor.ChooseGrid(1, 1, 560, pre.AspectRatios));
        Assert.Equal((560, 560), ImagePreprocessor.FitToCanvas(1, 1, 560, 560, 560));
        // 1×3000 strip: floor(1 · 560/3000) = 0 is guarded to 1.
        Assert.Equal((4, 1), ImagePreprocessor.ChooseGrid(3000, 1, 560, pre.AspectRatios));
        Assert.Equal((2240, 1), ImagePreprocessor.FitToCanvas(3000, 1, 560, 2240, 560));
    }
}

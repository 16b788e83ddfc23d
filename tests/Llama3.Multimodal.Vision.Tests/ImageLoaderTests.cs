using Llama3.Multimodal.Vision;
using SkiaSharp;

namespace Llama3.Multimodal.Vision.Tests;

public class ImageLoaderTests
{
    static byte[] Encode(SKBitmap bmp, SKEncodedImageFormat f, int q = 100)
    {
        using var img = SKImage.FromBitmap(bmp);
        using var data = img.Encode(f, q);
        return data.ToArray();
    }

    [Fact]
    public void PngRoundTripIsExact()
    {
        string dir = TestSupport.TempDir();
        string path = TestSupport.WritePng(dir, "scene.png", 37, 23, 5);
        var img = ImageLoader.Load(path);
        var expected = TestSupport.Scene(37, 23, 5);
        Assert.Equal(37, img.Width);
        Assert.Equal(23, img.Height);
        Assert.Equal(expected.Pixels, img.Pixels);
    }

    [Theory]
    [InlineData(SKEncodedImageFormat.Jpeg)]
    [InlineData(SKEncodedImageFormat.Webp)]
    public void LossyFormatsDecodeClose(SKEncodedImageFormat format)
    {
        using var bmp = TestSupport.RenderBitmap(48, 32, 9, opaque: true);
        var bytes = Encode(bmp, format, 95);
        var img = ImageLoader.Decode(bytes, "mem." + format);
        var expected = TestSupport.Scene(48, 32, 9);
        double mad = img.Pixels.Zip(expected.Pixels, (a, b) => Math.Abs(a - b)).Average();
        Assert.True(mad < 6, $"mean abs diff {mad}");
    }

    [Fact]
    public void GifFirstFrameDecodes()
    {
        // 1×1 GIF89a, global palette [red, black], pixel index 0 (hand-assembled; LZW codes clear, 0, end).
        byte[] gif = { 0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 1, 0, 1, 0, 0x80, 0, 0, 0xFF, 0, 0, 0, 0, 0,
                       0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 0x01, 0, 0x3B };
        var img = ImageLoader.Decode(gif, "red.gif");
        Assert.Equal(new byte[] { 255, 0, 0 }, img.Pixels);
    }

    [Fact]
    public void BmpDecodes()
    {
        // 2×2 24-bit BMP, rows bottom-up, BGR, each row padded to 8 bytes.
        var bmp = new List<byte>();
        void U16(int v) { bmp.Add((byte)v); bmp.Add((byte)(v >> 8)); }
        void U32(int v) { U16(v & 0xFFFF); U16(v >> 16); }
        bmp.Add((byte)'B'); bmp.Add((byte)'M'); U32(14 + 40 + 16); U32(0); U32(54);
        U32(40); U32(2); U32(2); U16(1); U16(24); U32(0); U32(16); U32(2835); U32(2835); U32(0); U32(0);
        // bottom row: (x0: blue), (x1: white); top row: (x0: red), (x1: green)
        bmp.AddRange(new byte[] { 255, 0, 0, 255, 255, 255, 0, 0 });
        bmp.AddRange(new byte[] { 0, 0, 255, 0, 255, 0, 0, 0 });
        var img = ImageLoader.Decode(bmp.ToArray(), "quad.bmp");
        Assert.Equal(new byte[] { 255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255 }, img.Pixels);
    }

    [Fact]
    public void AlphaIsDroppedByDefaultOrCompositedOnWhite()
    {
        using var bmp = new SKBitmap(new SKImageInfo(2, 1, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        bmp.SetPixel(0, 0, new SKColor(200, 100, 50, 128));
        bmp.SetPixel(1, 0, new SKColor(10, 20, 30, 0));
        var png = Encode(bmp, SKEncodedImageFormat.Png);
        var drop = ImageLoader.Decode(png, "a.png");
        Assert.Equal(new byte[] { 200, 100, 50 }, drop.Pixels.Take(3).ToArray());
        var white = ImageLoader.Decode(png, "a.png", AlphaHandling.CompositeOnWhite);
        // Pillow alpha_composite: 200·128/255 + 255·127/255 → 227, 100 → 177, 50 → 152; alpha 0 → white.
        Assert.Equal(new byte[] { 227, 177, 152, 255, 255, 255 }, white.Pixels);
    }

    public static IEnumerable<object[]> BadFiles() => new[]
    {
        new object[] { "empty.png", Array.Empty<byte>() },
        new object[] { "noise.jpg", Enumerable.Range(0, 500).Select(i => (byte)(i * 7919 % 251)).ToArray() },
        new object[] { "notes.png", System.Text.Encoding.UTF8.GetBytes("this is a text file, not an image\n") },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void BadFilesGiveMediaDecodeExceptionNamingTheFile(string name, byte[] content)
    {
        string path = Path.Combine(TestSupport.TempDir(), name);
        File.WriteAllBytes(path, content);
        var e = Assert.Throws<MediaDecodeException>(() => ImageLoader.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Equal(path, e.MediaPath);
    }

    [Theory]
    [InlineData(SKEncodedImageFormat.Png)]
    [InlineData(SKEncodedImageFormat.Jpeg)]
    public void TruncatedFilesGiveMediaDecodeException(SKEncodedImageFormat format)
    {
        using var bmp = TestSupport.RenderBitmap(64, 64, 3, opaque: true);
        var bytes = Encode(bmp, format, 90);
        string path = Path.Combine(TestSupport.TempDir(), "cut." + format);
        File.WriteAllBytes(path, bytes.Take(bytes.Length / 2).ToArray());
        var e = Assert.Throws<MediaDecodeException>(() => ImageLoader.Load(path));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void MissingFileGivesMediaDecodeException()
    {
        string path = Path.Combine(TestSupport.TempDir(), "nope.png");
        var e = Assert.Throws<MediaDecodeException>(() => ImageLoader.Load(path));
        Assert.Contains(path, e.Message);
    }
}

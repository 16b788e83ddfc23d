using Llama3.Multimodal.Tests.Shared;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using SkiaSharp;

namespace Llama3.Multimodal.Vision.Tests;

/// <summary>Seeded mutations of PNG and JPEG files: decoded, or a <see cref="MediaDecodeException"/>, fast and bounded.</summary>
public class ImageFuzzTests
{
    static byte[] Encode(SKEncodedImageFormat format)
    {
        using var bmp = new SKBitmap(48, 32);
        using (var c = new SKCanvas(bmp))
        {
            c.Clear(SKColors.White);
            using var p = new SKPaint { Color = SKColors.Purple, IsAntialias = true };
            c.DrawCircle(20, 16, 10, p);
        }
        using var img = SKImage.FromBitmap(bmp);
        return img.Encode(format, 90).ToArray();
    }

    static void Decode(string path)
    {
        var img = ImageLoader.Load(path);
        // Whatever decodes must be a sane image that preprocessing accepts.
        Assert.True(img.Width > 0 && img.Height > 0);
        using var processed = new ImagePreprocessor(56, 4).Process(img);
    }

    [Fact]
    public void MutatedPngFilesFailCleanly() =>
        Fuzz.Run(Encode(SKEncodedImageFormat.Png), 1500, 21, ".png", Decode, typeof(MediaDecodeException));

    [Fact]
    public void MutatedJpegFilesFailCleanly() =>
        Fuzz.Run(Encode(SKEncodedImageFormat.Jpeg), 1000, 22, ".jpg", Decode, typeof(MediaDecodeException));
}

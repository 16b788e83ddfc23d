using SkiaSharp;

namespace Llama3.Multimodal.Vision;

/// <summary>
/// Decodes PNG, JPEG, BMP, GIF (first frame) and WebP files with SkiaSharp into <see cref="RgbImage"/>. Every failure is
/// a <see cref="MediaDecodeException"/> naming the file.
/// </summary>
public static class ImageLoader
{
    /// <summary>Largest accepted file (bytes).</summary>
    public const long MaxFileBytes = 256L << 20;
    /// <summary>Largest accepted pixel count (width·height).</summary>
    public const long MaxPixels = 1L << 28;

    /// <summary>Reads and decodes the image at <paramref name="path"/>.</summary>
    public static RgbImage Load(string path, AlphaHandling alpha = AlphaHandling.Drop)
    {
        ArgumentNullException.ThrowIfNull(path);
        FileInfo info;
        try { info = new FileInfo(path); }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw new MediaDecodeException(path, "not a valid file path.", e);
        }
        if (!info.Exists) throw new MediaDecodeException(path, "image file not found.");
        if (info.Length == 0) throw new MediaDecodeException(path, "image file is empty (0 bytes).");
        if (info.Length > MaxFileBytes) throw new MediaDecodeException(path, $"image file of {info.Length} bytes exceeds the {MaxFileBytes}-byte limit.");
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (IOException e) { throw new MediaDecodeException(path, $"cannot read the file ({e.Message}).", e); }
        catch (UnauthorizedAccessException e) { throw new MediaDecodeException(path, $"cannot read the file ({e.Message}).", e); }
        return Decode(bytes, path, alpha);
    }

    /// <summary>Decodes an encoded image held in memory; <paramref name="source"/> names it in errors.</summary>
    public static RgbImage Decode(byte[] encoded, string source, AlphaHandling alpha = AlphaHandling.Drop)
    {
        ArgumentNullException.ThrowIfNull(encoded);
        if (encoded.Length == 0) throw new MediaDecodeException(source, "image data is empty (0 bytes).");
        using var data = SKData.CreateCopy(encoded);
        using var codec = SKCodec.Create(data);
        if (codec is null)
            throw new MediaDecodeException(source, "not a recognised image (supported: PNG, JPEG, BMP, GIF, WebP).");
        var size = codec.Info;
        if (size.Width <= 0 || size.Height <= 0) throw new MediaDecodeException(source, $"invalid image size {size.Width}x{size.Height}.");
        if ((long)size.Width * size.Height > MaxPixels) throw new MediaDecodeException(source, $"image of {size.Width}x{size.Height} pixels exceeds the {MaxPixels}-pixel limit.");
        // Unpremultiplied RGBA keeps the colour channels as stored, which is what "drop alpha" needs.
        var want = new SKImageInfo(size.Width, size.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var bitmap = new SKBitmap(want);
        var result = codec.GetPixels(want, bitmap.GetPixels());
        if (result is not (SKCodecResult.Success))
            throw new MediaDecodeException(source, result == SKCodecResult.IncompleteInput
                ? "image data is truncated."
                : $"image data is corrupt or unsupported ({result}).");
        var rgba = bitmap.Bytes;
        int n = size.Width * size.Height;
        var rgb = new byte[n * 3];
        for (int i = 0; i < n; i++)
        {
            byte r = rgba[4 * i], g = rgba[4 * i + 1], b = rgba[4 * i + 2], a = rgba[4 * i + 3];
            if (alpha == AlphaHandling.CompositeOnWhite && a != 255)
            {
                // Pillow Image.alpha_composite(white, image) in its 7-bit fixed point (AlphaComposite.c).
                r = Blend(r, a); g = Blend(g, a); b = Blend(b, a);
            }
            rgb[3 * i] = r; rgb[3 * i + 1] = g; rgb[3 * i + 2] = b;
        }
        return new RgbImage(size.Width, size.Height, rgb);
    }

    internal static byte Blend(byte c, byte a)
    {
        int coef1 = a * 128, coef2 = 255 * 128 - coef1;
        int tmp = c * coef1 + 255 * coef2 + (0x80 << 7);
        return (byte)((((tmp >> 8) + tmp) >> 8) >> 7);
    }
}

namespace Llama3.Multimodal.Vision;

/// <summary>An 8-bit RGB image in row-major, channel-interleaved order (<c>[H, W, 3]</c>).</summary>
public sealed class RgbImage
{
    /// <summary>Width in pixels.</summary>
    public int Width { get; }
    /// <summary>Height in pixels.</summary>
    public int Height { get; }
    /// <summary>Pixels: byte <c>(y·Width + x)·3 + c</c> is channel c (R, G, B) of pixel (x, y).</summary>
    public byte[] Pixels { get; }

    /// <summary>Wraps <paramref name="pixels"/> (length must be width·height·3).</summary>
    public RgbImage(int width, int height, byte[] pixels)
    {
        if (width <= 0 || height <= 0) throw new ArgumentException($"image size {width}x{height} must be positive.");
        ArgumentNullException.ThrowIfNull(pixels);
        if (pixels.LongLength != (long)width * height * 3)
            throw new ArgumentException($"pixel buffer holds {pixels.LongLength} bytes; a {width}x{height} RGB image needs {(long)width * height * 3}.");
        Width = width; Height = height; Pixels = pixels;
    }

    /// <summary>An image filled with one colour.</summary>
    public static RgbImage Filled(int width, int height, byte r, byte g, byte b)
    {
        var p = new byte[width * height * 3];
        for (int i = 0; i < p.Length; i += 3) { p[i] = r; p[i + 1] = g; p[i + 2] = b; }
        return new RgbImage(width, height, p);
    }

    /// <summary>Channel <paramref name="c"/> of pixel (<paramref name="x"/>, <paramref name="y"/>).</summary>
    public byte this[int x, int y, int c] => Pixels[(y * Width + x) * 3 + c];
}

namespace Llama3.Multimodal.Vision;

/// <summary>
/// Pillow's <c>Image.resize(size, BILINEAR)</c> on 8-bit RGB, reproduced exactly: a separable triangle filter whose
/// support widens with the downscale factor (antialiasing), horizontal pass then vertical pass, coefficients in 22-bit
/// fixed point, a uint8 intermediate, round-half-up and clamping (Pillow <c>Resample.c</c>). Both Llama 3.2 Vision
/// references resize through Pillow, so this gives their pixels bit for bit.
/// </summary>
public static class PilBilinear
{
    const int PrecisionBits = 32 - 8 - 2;

    /// <summary>Resizes <paramref name="image"/> to <paramref name="width"/>×<paramref name="height"/>.</summary>
    public static RgbImage Resize(RgbImage image, int width, int height)
    {
        if (width <= 0 || height <= 0) throw new ArgumentException($"target size {width}x{height} must be positive.");
        if (width == image.Width && height == image.Height) return new RgbImage(width, height, (byte[])image.Pixels.Clone());
        byte[] cur = image.Pixels;
        int curW = image.Width, curH = image.Height;
        if (width != curW)
        {
            cur = Horizontal(cur, curW, curH, width);
            curW = width;
        }
        if (height != curH)
        {
            cur = Vertical(cur, curW, curH, height);
            curH = height;
        }
        return new RgbImage(curW, curH, cur);
    }

    /// <summary>
    /// Filter taps for resampling <paramref name="inSize"/> samples to <paramref name="outSize"/>: per output sample the
    /// first input index, the tap count, and fixed-point weights (Pillow <c>precompute_coeffs</c> + <c>normalize_coeffs_8bpc</c>).
    /// </summary>
    internal static (int[] Start, int[] Count, int[] Weights, int KSize) Coefficients(int inSize, int outSize)
    {
        double scale = (double)inSize / outSize;
        double filterScale = Math.Max(scale, 1.0);
        double support = 1.0 * filterScale;
        int ksize = (int)Math.Ceiling(support) * 2 + 1;
        var start = new int[outSize];
        var count = new int[outSize];
        var weights = new int[outSize * ksize];
        var k = new double[ksize];
        double ss = 1.0 / filterScale;
        for (int xx = 0; xx < outSize; xx++)
        {
            double center = (xx + 0.5) * scale;
            double ww = 0.0;
            int xmin = (int)(center - support + 0.5);
            if (xmin < 0) xmin = 0;
            int xmax = (int)(center + support + 0.5);
            if (xmax > inSize) xmax = inSize;
            xmax -= xmin;
            for (int x = 0; x < xmax; x++)
            {
                double w = Triangle((x + xmin - center + 0.5) * ss);
                k[x] = w;
                ww += w;
            }
            for (int x = 0; x < xmax; x++)
            {
                double w = ww != 0.0 ? k[x] / ww : k[x];
                weights[xx * ksize + x] = w < 0 ? (int)(-0.5 + w * (1 << PrecisionBits)) : (int)(0.5 + w * (1 << PrecisionBits));
            }
            start[xx] = xmin;
            count[xx] = xmax;
        }
        return (start, count, weights, ksize);
    }

    static double Triangle(double x)
    {
        if (x < 0) x = -x;
        return x < 1.0 ? 1.0 - x : 0.0;
    }

    static byte Clip8(long v)
    {
        if (v >= (1L << PrecisionBits) << 8) return 255;
        if (v <= 0) return 0;
        return (byte)(v >> PrecisionBits);
    }

    static byte[] Horizontal(byte[] src, int w, int h, int outW)
    {
        var (start, count, weights, ksize) = Coefficients(w, outW);
        var dst = new byte[outW * h * 3];
        Parallel.For(0, h, y =>
        {
            int rowIn = y * w * 3, rowOut = y * outW * 3;
            for (int xx = 0; xx < outW; xx++)
            {
                int xmin = start[xx], n = count[xx], kb = xx * ksize;
                for (int c = 0; c < 3; c++)
                {
                    long acc = 1L << (PrecisionBits - 1);
                    for (int x = 0; x < n; x++) acc += src[rowIn + (xmin + x) * 3 + c] * (long)weights[kb + x];
                    dst[rowOut + xx * 3 + c] = Clip8(acc);
                }
            }
        });
        return dst;
    }

    static byte[] Vertical(byte[] src, int w, int h, int outH)
    {
        var (start, count, weights, ksize) = Coefficients(h, outH);
        var dst = new byte[w * outH * 3];
        int stride = w * 3;
        Parallel.For(0, outH, yy =>
        {
            int ymin = start[yy], n = count[yy], kb = yy * ksize;
            int rowOut = yy * stride;
            for (int i = 0; i < stride; i++)
            {
                long acc = 1L << (PrecisionBits - 1);
                for (int y = 0; y < n; y++) acc += src[(ymin + y) * stride + i] * (long)weights[kb + y];
                dst[rowOut + i] = Clip8(acc);
            }
        });
        return dst;
    }
}

using Llama3.Multimodal.Vision;
using SkiaSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision.Tests;

/// <summary>Shared helpers: tiny models, rendered images, temp folders.</summary>
internal static class TestSupport
{
    public static VisionLanguageModel Tiny(long seed = 1, bool gates = true)
    {
        var m = VisionLanguageModel.Create(VisionPresets.Get("tiny-vision")).InitializeWeights(seed, 0.1);
        if (gates) SetGates(m, 0.7);
        return m;
    }

    /// <summary>Gives every tanh gate a non-zero value so the adapters and gated encoder parts matter.</summary>
    public static void SetGates(nn.Module m, double value)
    {
        using var _ = no_grad();
        int k = 0;
        foreach (var (name, p) in m.named_parameters())
            if (p.dim() == 1 && p.shape[0] == 1 && name.Contains("gate")) p.fill_(value + 0.05 * (k++ % 5));
    }

    public static string TempDir()
    {
        return Llama3.Multimodal.Tests.Shared.TestTemp.NewDir("l3mm-vision-tests");
    }

    /// <summary>Renders a scene (gradient background, a circle and a rectangle) into an RGB image.</summary>
    public static RgbImage Scene(int width, int height, int seed)
    {
        using var bmp = RenderBitmap(width, height, seed, opaque: true);
        var rgba = bmp.Bytes;
        var rgb = new byte[width * height * 3];
        for (int i = 0; i < width * height; i++) { rgb[3 * i] = rgba[4 * i]; rgb[3 * i + 1] = rgba[4 * i + 1]; rgb[3 * i + 2] = rgba[4 * i + 2]; }
        return new RgbImage(width, height, rgb);
    }

    public static SKBitmap RenderBitmap(int width, int height, int seed, bool opaque)
    {
        var bmp = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, opaque ? SKAlphaType.Opaque : SKAlphaType.Unpremul));
        using var canvas = new SKCanvas(bmp);
        var rng = new Random(seed);
        using (var shader = SKShader.CreateLinearGradient(new SKPoint(0, 0), new SKPoint(width, height),
                   new[] { new SKColor((byte)rng.Next(256), (byte)rng.Next(256), (byte)rng.Next(256)), new SKColor((byte)rng.Next(256), (byte)rng.Next(256), (byte)rng.Next(256)) },
                   SKShaderTileMode.Clamp))
        using (var paint = new SKPaint { Shader = shader })
            canvas.DrawRect(0, 0, width, height, paint);
        using (var paint = new SKPaint { Color = new SKColor((byte)rng.Next(256), (byte)rng.Next(256), (byte)rng.Next(256)), IsAntialias = true })
            canvas.DrawCircle(width * 0.3f, height * 0.4f, Math.Min(width, height) * 0.25f, paint);
        using (var paint = new SKPaint { Color = new SKColor((byte)rng.Next(256), (byte)rng.Next(256), (byte)rng.Next(256)) })
            canvas.DrawRect(width * 0.55f, height * 0.5f, width * 0.35f, height * 0.3f, paint);
        canvas.Flush();
        return bmp;
    }

    public static string WritePng(string dir, string name, int width, int height, int seed)
    {
        using var bmp = RenderBitmap(width, height, seed, opaque: true);
        using var img = SKImage.FromBitmap(bmp);
        using var data = img.Encode(SKEncodedImageFormat.Png, 100);
        string path = Path.Combine(dir, name);
        File.WriteAllBytes(path, data.ToArray());
        return path;
    }
}

using SkiaSharp;

namespace Llama3.Multimodal.Demo;

/// <summary>A sampled image scene: its attributes, background and the placed shapes / text (fractions of the side).</summary>
internal sealed record ImageScene(ImageAttributes Attributes, string Background, IReadOnlyList<PlacedShape> Shapes, PlacedText? Text)
{
    public byte[] RenderPng(int size)
    {
        var info = new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var bmp = new SKBitmap(info);
        using (var canvas = new SKCanvas(bmp))
        {
            canvas.Clear(ShapeScenes.Background(Background));
            foreach (var s in Shapes)
                ShapePainter.Draw(canvas, s.Shape, s.X * size, s.Y * size, s.R * size, ShapeScenes.Colour(s.Colour));
            if (Text is { } t)
                StrokeFont.Draw(canvas, t.Text, t.X * size, t.Y * size, t.Height * size, t.Colour);
        }
        using var data = bmp.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }
}

/// <summary>A shape placed at centre (X, Y) with radius R, all as fractions of the image side.</summary>
internal sealed record PlacedShape(string Shape, string Colour, float X, float Y, float R);

/// <summary>Printed text with top-left (X, Y) and letter height, as fractions of the image side.</summary>
internal sealed record PlacedText(string Text, float X, float Y, float Height, SKColor Colour);

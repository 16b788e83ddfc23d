using SkiaSharp;

namespace Llama3.Multimodal.Demo;

/// <summary>Draws the grammar's shapes, filled, centred on (cx, cy) inside a circle of radius r (pixels).
/// Every shape covers its centre, so the centre pixel carries the shape's colour.</summary>
internal static class ShapePainter
{
    public static void Draw(SKCanvas canvas, string shape, float cx, float cy, float r, SKColor colour)
    {
        using var paint = new SKPaint { Color = colour, IsAntialias = true, Style = SKPaintStyle.Fill };
        switch (shape)
        {
            case "circle": canvas.DrawCircle(cx, cy, r, paint); break;
            case "square": { float h = r * 0.85f; canvas.DrawRect(cx - h, cy - h, 2 * h, 2 * h, paint); break; }
            case "triangle":
                // Equilateral, pointing up, vertices on the circle; its centroid is (cx, cy).
                Poly(canvas, paint, cx, cy, r, 3, 1f);
                break;
            case "star": Poly(canvas, paint, cx, cy, r, 5, 0.45f); break;
            case "diamond":
                using (var p = new SKPath())
                {
                    p.MoveTo(cx, cy - r); p.LineTo(cx + 0.7f * r, cy); p.LineTo(cx, cy + r); p.LineTo(cx - 0.7f * r, cy); p.Close();
                    canvas.DrawPath(p, paint);
                }
                break;
            case "cross":
                { float a = r * 0.35f, h = r * 0.9f; canvas.DrawRect(cx - h, cy - a, 2 * h, 2 * a, paint); canvas.DrawRect(cx - a, cy - h, 2 * a, 2 * h, paint); }
                break;
            default: throw new SyntheticDataException($"unknown shape \"{shape}\" (known: {string.Join(", ", ShapeScenes.Shapes)}).");
        }
    }

    // A regular polygon (innerRatio 1) or a star (points alternate between r and innerRatio·r), first point up.
    static void Poly(SKCanvas canvas, SKPaint paint, float cx, float cy, float r, int points, float innerRatio)
    {
        using var p = new SKPath();
        int n = innerRatio >= 1f ? points : 2 * points;
        for (int i = 0; i < n; i++)
        {
            double ang = -Math.PI / 2 + i * 2 * Math.PI / n;
            float rr = innerRatio >= 1f || i % 2 == 0 ? r : r * innerRatio;
            float x = cx + rr * (float)Math.Cos(ang), y = cy + rr * (float)Math.Sin(ang);
            if (i == 0) p.MoveTo(x, y); else p.LineTo(x, y);
        }
        p.Close();
        canvas.DrawPath(p, paint);
    }
}

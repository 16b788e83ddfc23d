using SkiaSharp;

namespace Llama3.Multimodal.Demo;

/// <summary>A sampled clip: two events and the per-frame state of up to two shapes. Event k occupies half k of the
/// clip; a move is linear over its half, a colour change / appearance / disappearance happens at the half's middle.</summary>
internal sealed class VideoScript
{
    public required string Background { get; init; }
    public required IReadOnlyList<VideoEvent> Events { get; init; }
    public required ScriptShape A { get; init; }
    public ScriptShape? B { get; init; }
    public const float Radius = 0.14f, Step = 0.3f;

    /// <summary>A shape's path: position at the start/end of each half, colour per half-quarter, visibility window.</summary>
    internal sealed class ScriptShape
    {
        public required string Shape { get; init; }
        public required (float X, float Y)[] Points { get; init; }   // positions at t = 0, 0.5, 1 (fractions of the clip)
        public required string[] Colours { get; init; }              // colour in quarters 0..3
        public required bool[] Visible { get; init; }                // visibility in quarters 0..3

        public (float X, float Y, string Colour, bool Visible) At(double t)
        {
            int q = Math.Min(3, (int)(t * 4));
            int half = t < 0.5 ? 0 : 1;
            double f = Math.Clamp((t - 0.5 * half) / 0.5, 0, 1);
            var (x0, y0) = Points[half];
            var (x1, y1) = Points[half + 1];
            return ((float)(x0 + (x1 - x0) * f), (float)(y0 + (y1 - y0) * f), Colours[q], Visible[q]);
        }
    }

    public static VideoScript Sample(Random rng)
    {
        T P<T>(IReadOnlyList<T> l) => l[rng.Next(l.Count)];
        string bg = P(ShapeScenes.Backgrounds);
        string shape = P(ShapeScenes.Shapes), colour = P(ShapeScenes.Colours);
        string OtherColour(string c) { string n; do n = P(ShapeScenes.Colours); while (n == c); return n; }

        // Event 1 on A: moves, turns or appears. Event 2: A moves/turns/disappears, or a new shape B appears.
        string v1 = P(new[] { "moves", "turns", "appears" });
        string v2 = P(new[] { "moves", "turns", "disappears", "appears" });
        var dirs = new (float X, float Y)[2];
        var colours = new[] { colour, colour, colour, colour };
        var visible = new[] { true, true, true, true };
        var events = new List<VideoEvent>();
        string subject = $"a {colour} {shape}";
        string? a1 = null, a2 = null;
        switch (v1)
        {
            case "moves": a1 = P(VideoCaptionGrammar.Directions); dirs[0] = Dir(a1); break;
            case "turns": a1 = OtherColour(colour); colours[1] = colours[2] = colours[3] = a1; break;
            default: visible[0] = false; break;
        }
        events.Add(new VideoEvent(subject, v1, a1));
        string cNow = colours[1];
        ScriptShape? b = null;
        string? bShape = null, bColour = null;
        switch (v2)
        {
            case "moves": a2 = P(VideoCaptionGrammar.Directions); dirs[1] = Dir(a2); events.Add(new VideoEvent("it", v2, a2)); break;
            case "turns": a2 = OtherColour(cNow); colours[3] = a2; events.Add(new VideoEvent("it", v2, a2)); break;
            case "disappears": visible[3] = false; events.Add(new VideoEvent("it", v2, null)); break;
            default:
                do { bShape = P(ShapeScenes.Shapes); bColour = P(ShapeScenes.Colours); } while (bColour == cNow && bShape == shape);
                events.Add(new VideoEvent($"a {bColour} {bShape}", "appears", null));
                break;
        }

        // Start point so every position stays inside [lo, hi] on each axis.
        const float lo = 0.2f, hi = 0.8f;
        float Start(float d0, float d1)
        {
            float min = Math.Min(0, Math.Min(d0, d0 + d1)), max = Math.Max(0, Math.Max(d0, d0 + d1));
            return (float)(lo - min + rng.NextDouble() * ((hi - max) - (lo - min)));
        }
        float sx = Start(dirs[0].X * Step, dirs[1].X * Step), sy = Start(dirs[0].Y * Step, dirs[1].Y * Step);
        var pts = new[] { (sx, sy), (sx + dirs[0].X * Step, sy + dirs[0].Y * Step), (sx + (dirs[0].X + dirs[1].X) * Step, sy + (dirs[0].Y + dirs[1].Y) * Step) };
        var a = new ScriptShape { Shape = shape, Points = pts, Colours = colours, Visible = visible };
        if (bShape != null)
        {
            var (ax, ay) = pts[1];
            float bx, by;
            do { bx = (float)(lo + rng.NextDouble() * (hi - lo)); by = (float)(lo + rng.NextDouble() * (hi - lo)); }
            while (Math.Sqrt((bx - ax) * (bx - ax) + (by - ay) * (by - ay)) < 0.32);
            b = new ScriptShape { Shape = bShape, Points = new[] { (bx, by), (bx, by), (bx, by) }, Colours = new[] { bColour!, bColour!, bColour!, bColour! }, Visible = new[] { false, false, false, true } };
        }
        return new VideoScript { Background = bg, Events = events, A = a, B = b };
    }

    static (float, float) Dir(string d) => d switch { "left" => (-1f, 0f), "right" => (1f, 0f), "up" => (0f, -1f), _ => (0f, 1f) };

    /// <summary>Renders frame <paramref name="i"/> of <paramref name="n"/> as packed rgb24 into <paramref name="rgb"/>.</summary>
    public void RenderRgb24(int i, int n, int size, SKBitmap bmp, byte[] rgb)
    {
        double t = (i + 0.5) / n;
        using (var canvas = new SKCanvas(bmp))
        {
            canvas.Clear(ShapeScenes.Background(Background));
            foreach (var s in B is null ? new[] { A } : new[] { A, B })
            {
                var (x, y, c, vis) = s.At(t);
                if (vis) ShapePainter.Draw(canvas, s.Shape, x * size, y * size, Radius * size, ShapeScenes.Colour(c));
            }
        }
        var px = bmp.GetPixelSpan();   // RGBA8888
        for (int k = 0, j = 0; k < size * size; k++, j += 4)
        {
            rgb[3 * k] = px[j]; rgb[3 * k + 1] = px[j + 1]; rgb[3 * k + 2] = px[j + 2];
        }
    }
}

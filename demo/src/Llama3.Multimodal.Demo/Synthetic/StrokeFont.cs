using SkiaSharp;

namespace Llama3.Multimodal.Demo;

/// <summary>
/// A built-in stroke font for A–Z and 0–9 (polylines on a 4×6 grid, y down), so printed words render the same on
/// every machine without system fonts (SkiaSharp's no-dependency native build has none).
/// </summary>
internal static class StrokeFont
{
    static readonly Dictionary<char, string> Glyphs = new()
    {
        ['A'] = "0,6 0,2 2,0 4,2 4,6;0,3 4,3",
        ['B'] = "0,0 0,6 3,6 4,5 4,4 3,3 0,3;0,0 3,0 4,1 4,2 3,3",
        ['C'] = "4,0 0,0 0,6 4,6",
        ['D'] = "0,0 0,6 2,6 4,4 4,2 2,0 0,0",
        ['E'] = "4,0 0,0 0,6 4,6;0,3 3,3",
        ['F'] = "4,0 0,0 0,6;0,3 3,3",
        ['G'] = "4,1 4,0 0,0 0,6 4,6 4,3 2,3",
        ['H'] = "0,0 0,6;4,0 4,6;0,3 4,3",
        ['I'] = "1,0 3,0;2,0 2,6;1,6 3,6",
        ['J'] = "1,0 4,0;3,0 3,5 2,6 1,6 0,5",
        ['K'] = "0,0 0,6;4,0 0,3 4,6",
        ['L'] = "0,0 0,6 4,6",
        ['M'] = "0,6 0,0 2,3 4,0 4,6",
        ['N'] = "0,6 0,0 4,6 4,0",
        ['O'] = "0,0 4,0 4,6 0,6 0,0",
        ['P'] = "0,6 0,0 4,0 4,3 0,3",
        ['Q'] = "0,0 4,0 4,6 0,6 0,0;2,4 4,6",
        ['R'] = "0,6 0,0 4,0 4,3 0,3 4,6",
        ['S'] = "4,0 0,0 0,3 4,3 4,6 0,6",
        ['T'] = "0,0 4,0;2,0 2,6",
        ['U'] = "0,0 0,6 4,6 4,0",
        ['V'] = "0,0 2,6 4,0",
        ['W'] = "0,0 1,6 2,3 3,6 4,0",
        ['X'] = "0,0 4,6;4,0 0,6",
        ['Y'] = "0,0 2,3 4,0;2,3 2,6",
        ['Z'] = "0,0 4,0 0,6 4,6",
        ['0'] = "0,0 4,0 4,6 0,6 0,0;4,0 0,6",
        ['1'] = "1,1 2,0 2,6;1,6 3,6",
        ['2'] = "0,0 4,0 4,3 0,3 0,6 4,6",
        ['3'] = "0,0 4,0 4,6 0,6;1,3 4,3",
        ['4'] = "0,0 0,3 4,3;4,0 4,6",
        ['5'] = "4,0 0,0 0,3 4,3 4,6 0,6",
        ['6'] = "4,0 0,0 0,6 4,6 4,3 0,3",
        ['7'] = "0,0 4,0 1,6",
        ['8'] = "0,0 4,0 4,6 0,6 0,0;0,3 4,3",
        ['9'] = "4,3 0,3 0,0 4,0 4,6 0,6",
    };

    /// <summary>Left margin of <paramref name="c"/>'s strokes inside its 4×6 cell, in grid units (1 for '1' and 'I', 0 for most).</summary>
    public static int LeftMargin(char c) =>
        Glyphs.TryGetValue(c, out var g) ? g.Split(new[] { ';', ' ' }).Min(p => int.Parse(p.Split(',')[0], System.Globalization.CultureInfo.InvariantCulture))
            : throw new SyntheticDataException($"the stroke font has no glyph for '{c}' (A–Z, 0–9 only).");

    /// <summary>Advance per character in glyph heights.</summary>
    public const float Advance = 0.9f;

    /// <summary>Width in pixels of <paramref name="text"/> at letter height <paramref name="height"/>.</summary>
    public static float Width(string text, float height) => text.Length == 0 ? 0 : (text.Length - 1) * Advance * height + 4f / 6f * height;

    /// <summary>Draws upper-case letters and digits with top-left corner (x, y), letter height in pixels.</summary>
    public static void Draw(SKCanvas canvas, string text, float x, float y, float height, SKColor colour)
    {
        float unit = height / 6f;
        using var paint = new SKPaint
        {
            Color = colour, IsAntialias = true, Style = SKPaintStyle.Stroke,
            StrokeWidth = Math.Max(1f, height / 7f), StrokeCap = SKStrokeCap.Round, StrokeJoin = SKStrokeJoin.Round,
        };
        for (int i = 0; i < text.Length; i++)
        {
            if (!Glyphs.TryGetValue(text[i], out var g)) throw new SyntheticDataException($"the stroke font has no glyph for '{text[i]}' (A–Z, 0–9 only).");
            float ox = x + i * Advance * height;
            foreach (var stroke in g.Split(';'))
            {
                using var p = new SKPath();
                var pts = stroke.Split(' ');
                for (int k = 0; k < pts.Length; k++)
                {
                    var xy = pts[k].Split(',');
                    float px = ox + float.Parse(xy[0]) * unit, py = y + float.Parse(xy[1]) * unit;
                    if (k == 0) p.MoveTo(px, py); else p.LineTo(px, py);
                }
                canvas.DrawPath(p, paint);
            }
        }
    }
}

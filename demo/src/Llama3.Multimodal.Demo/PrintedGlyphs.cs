using Llama3.Multimodal.Vision;

namespace Llama3.Multimodal.Demo;

/// <summary>
/// Where the glyphs of a printed word or number (<c>make-data images</c>' word and number scenes, drawn in the stroke font
/// on a flat background) lie in an image, and under which encoder patch each one falls once the image is processed. Used
/// by <c>mm-demo eval number-probe</c> and by <see cref="GlyphLoss"/> and <see cref="ShapeLoss"/>.
/// </summary>
internal static class PrintedGlyphs
{
    /// <summary>The characters of printed words and numbers, in class order (the glyph loss's own head).</summary>
    public const string Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    /// <summary>Places in a text the glyph loss's own head tells apart (first … fourth; words have at most four letters).</summary>
    public const int Slots = 4;

    /// <summary>
    /// Image-pixel centres of the glyphs of <paramref name="text"/>, one per character: the ink is every pixel that differs
    /// from the top-left pixel (the flat background) by more than 64 in some channel; its box gives the letter height (every
    /// glyph fills its 4×6 cell's height) and the text's left edge (less the first glyph's left margin in its cell, e.g.
    /// one unit for '1' and 'I'). Null: no ink. Within about a pixel of the drawn centres (tested).
    /// </summary>
    public static (double X, double Y)[]? Centres(RgbImage image, string text)
    {
        if (text.Length == 0) return null;
        int x0 = int.MaxValue, y0 = int.MaxValue, x1 = -1, y1 = -1;
        for (int y = 0; y < image.Height; y++)
            for (int x = 0; x < image.Width; x++)
            {
                int diff = 0;
                for (int ch = 0; ch < 3; ch++) diff = Math.Max(diff, Math.Abs(image[x, y, ch] - image[0, 0, ch]));
                if (diff <= 64) continue;
                x0 = Math.Min(x0, x); x1 = Math.Max(x1, x); y0 = Math.Min(y0, y); y1 = Math.Max(y1, y);
            }
        if (x1 < 0) return null;
        // The strokes are max(1, h/7) wide and centred on the glyph's lines, so the ink reaches half a stroke past the cell.
        double ink = y1 - y0 + 1, h = ink >= 8 ? ink * 7 / 8 : ink - 1, stroke = Math.Max(1, h / 7), unit = h / 6;
        double left = x0 + stroke / 2 - StrokeFont.LeftMargin(text[0]) * unit, cy = (y0 + y1 + 1) / 2.0;
        var centres = new (double X, double Y)[text.Length];
        for (int k = 0; k < text.Length; k++) centres[k] = (left + k * StrokeFont.Advance * h + 2 * unit, cy);
        return centres;
    }

    /// <summary>
    /// The tile slot and row-major patch index under pixel <paramref name="at"/> of <paramref name="image"/> once processed
    /// into <paramref name="p"/> (resized into tiles of <see cref="VisionConfig.ImageSize"/>, patches of
    /// <see cref="VisionConfig.PatchSize"/>); clamped to the grid.
    /// </summary>
    public static (int Tile, int Patch) PatchAt(ProcessedImage p, VisionConfig c, RgbImage image, (double X, double Y) at)
    {
        double x = at.X * p.Resized.W / image.Width, y = at.Y * p.Resized.H / image.Height;
        int col = Math.Clamp((int)(x / c.ImageSize), 0, p.Grid.W - 1), row = Math.Clamp((int)(y / c.ImageSize), 0, p.Grid.H - 1);
        int px = Math.Clamp((int)((x - col * c.ImageSize) / c.PatchSize), 0, c.GridSize - 1);
        int py = Math.Clamp((int)((y - row * c.ImageSize) / c.PatchSize), 0, c.GridSize - 1);
        return (row * p.Grid.W + col, py * c.GridSize + px);
    }

    /// <summary>
    /// The row of a glyph's patch in one image's cross-attention source (<see cref="VisionLanguageModel.EncodeImages"/>:
    /// tiles in slot order, each the class token followed by its patches).
    /// </summary>
    public static int SourceRow(VisionConfig c, int tile, int patch) => tile * c.TokensPerTile + 1 + patch;
}

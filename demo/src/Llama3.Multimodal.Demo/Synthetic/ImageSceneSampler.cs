using SkiaSharp;

namespace Llama3.Multimodal.Demo;

/// <summary>Samples image scenes from the grammar with a seeded generator (layout constants in GRAMMAR.md).</summary>
internal sealed class ImageSceneSampler
{
    static readonly string[] AllKinds = { "single", "count", "overlap", "word", "number" };
    static readonly double[] DefaultWeights = { 0.40, 0.20, 0.20, 0.12, 0.08 };

    readonly Random _rng;
    readonly HashSet<ColourShape> _heldOut;
    readonly HeldOutMode _mode;
    readonly string[] _kinds;
    readonly double[] _weights;

    public ImageSceneSampler(int seed, IReadOnlyList<ColourShape>? heldOut, HeldOutMode mode, IReadOnlyList<string>? kinds)
    {
        _rng = new Random(seed);
        _heldOut = new HashSet<ColourShape>(heldOut ?? Array.Empty<ColourShape>());
        _mode = mode;
        if (mode == HeldOutMode.Only && _heldOut.Count == 0) throw new SyntheticDataException("held-out mode Only needs at least one held-out colour+shape combination.");
        if (mode == HeldOutMode.Exclude && _heldOut.Count >= ShapeScenes.Colours.Count * ShapeScenes.Shapes.Count)
            throw new SyntheticDataException("every colour+shape combination is held out; nothing left to make.");
        var ks = kinds?.ToArray() ?? AllKinds;
        foreach (var k in ks)
            if (!AllKinds.Contains(k)) throw new SyntheticDataException($"unknown image scene kind \"{k}\" (known: {string.Join(", ", AllKinds)}).");
        if (mode == HeldOutMode.Only) ks = ks.Where(k => !ShapeScenes.IsPrintKind(k)).ToArray();
        if (ks.Length == 0) throw new SyntheticDataException("no image scene kind left to make (word and number scenes cannot be held-out colour+shape scenes).");
        _kinds = ks;
        _weights = ks.Select(k => DefaultWeights[Array.IndexOf(AllKinds, k)]).ToArray();
    }

    T Pick<T>(IReadOnlyList<T> list) => list[_rng.Next(list.Count)];
    float U(double lo, double hi) => (float)(lo + (hi - lo) * _rng.NextDouble());

    string PickKind()
    {
        double u = _rng.NextDouble() * _weights.Sum();
        for (int i = 0; i < _kinds.Length; i++) { u -= _weights[i]; if (u < 0) return _kinds[i]; }
        return _kinds[^1];
    }

    // A colour+shape pair obeying the held-out mode.
    ColourShape PickPair(bool mustBeHeldOut)
    {
        if (mustBeHeldOut) return Pick(_heldOut.OrderBy(p => p.Colour, StringComparer.Ordinal).ThenBy(p => p.Shape, StringComparer.Ordinal).ToList());
        while (true)
        {
            var p = new ColourShape(Pick(ShapeScenes.Colours), Pick(ShapeScenes.Shapes));
            if (_mode != HeldOutMode.Exclude || !_heldOut.Contains(p)) return p;
        }
    }

    public ImageScene Next()
    {
        string kind = PickKind();
        string bg = Pick(ShapeScenes.Backgrounds);
        bool only = _mode == HeldOutMode.Only;
        switch (kind)
        {
            case "single":
            {
                var p = PickPair(only);
                string size = Pick(ShapeScenes.Sizes), pos = Pick(ShapeScenes.Positions);
                float r = size == "small" ? 0.12f : 0.22f;
                var (cx, cy) = pos switch { "left" => (0.27f, 0.5f), "right" => (0.73f, 0.5f), "top" => (0.5f, 0.27f), "bottom" => (0.5f, 0.73f), _ => (0.5f, 0.5f) };
                var shape = new PlacedShape(p.Shape, p.Colour, cx + U(-0.03, 0.03), cy + U(-0.03, 0.03), r);
                return new ImageScene(new ImageAttributes("single", p.Shape, p.Colour, size, pos, "one"), bg, new[] { shape }, null);
            }
            case "count":
            {
                var p = PickPair(only);
                int n = _rng.Next(2, 4);
                string size = Pick(ShapeScenes.Sizes);
                float r = size == "small" ? 0.09f : 0.14f;
                var cells = Enumerable.Range(0, 9).ToList();
                var shapes = new List<PlacedShape>();
                for (int i = 0; i < n; i++)
                {
                    int k = _rng.Next(cells.Count);
                    int cell = cells[k];
                    cells.RemoveAt(k);
                    float cx = (cell % 3 + 0.5f) / 3f + U(-0.015, 0.015), cy = (cell / 3 + 0.5f) / 3f + U(-0.015, 0.015);
                    shapes.Add(new PlacedShape(p.Shape, p.Colour, cx, cy, r));
                }
                return new ImageScene(new ImageAttributes("count", p.Shape, p.Colour, size, null, ShapeScenes.Counts[n - 1]), bg, shapes, null);
            }
            case "overlap":
            {
                // In Only mode the front or the back shape (chosen at random) is a held-out pair.
                bool frontHeld = only && _rng.Next(2) == 0, backHeld = only && !frontHeld;
                ColourShape front, back;
                if (backHeld)
                {
                    back = PickPair(true);
                    do front = PickPair(false); while (front.Colour == back.Colour);
                }
                else
                {
                    front = PickPair(frontHeld);
                    do back = PickPair(false); while (back.Colour == front.Colour);
                }
                float bx = 0.5f + U(-0.06, 0.06), by = 0.5f + U(-0.06, 0.06);
                double ang = _rng.NextDouble() * 2 * Math.PI;
                float d = U(0.12, 0.18);
                var shapes = new[]
                {
                    new PlacedShape(back.Shape, back.Colour, bx, by, 0.3f),
                    new PlacedShape(front.Shape, front.Colour, bx + d * (float)Math.Cos(ang), by + d * (float)Math.Sin(ang), 0.15f),
                };
                return new ImageScene(new ImageAttributes("overlap", front.Shape, front.Colour, Shape2: back.Shape, Colour2: back.Colour), bg, shapes, null);
            }
            default:
            {
                string text = kind == "word" ? Pick(ShapeScenes.Words) : _rng.Next(0, 100).ToString(System.Globalization.CultureInfo.InvariantCulture);
                string size = Pick(ShapeScenes.Sizes);
                float h = size == "small" ? 0.1f : 0.2f;
                float w = StrokeFont.Width(text, h), margin = 0.04f;
                float x = U(margin, 1 - margin - w), y = U(margin, 1 - margin - h);
                var colour = bg == "black" ? SKColors.White : SKColors.Black;
                return new ImageScene(new ImageAttributes(kind, Size: size, Text: text), bg, Array.Empty<PlacedShape>(), new PlacedText(text, x, y, h, colour));
            }
        }
    }
}

using SkiaSharp;

namespace Llama3.Multimodal.Demo.Tests;

public class ImageDataMakerTests
{
    [Fact]
    public void MakesRequestedCountByteIdenticallyForASeed()
    {
        string a = SyntheticTestFiles.NewDir("img-a"), b = SyntheticTestFiles.NewDir("img-b"), c = SyntheticTestFiles.NewDir("img-c");
        var o = new ImageMakerOptions(Count: 25, Seed: 11, Size: 64);
        var ma = ImageDataMaker.Make(o, a);
        var mb = ImageDataMaker.Make(o, b);
        var mc = ImageDataMaker.Make(o with { Seed = 12 }, c);
        Assert.Equal(25, ma.Count);
        Assert.Equal(25, Directory.GetFiles(Path.Combine(a, "images"), "*.png").Length);
        Assert.Equal(File.ReadAllBytes(ma.ManifestPath), File.ReadAllBytes(mb.ManifestPath));
        Assert.Equal(File.ReadAllBytes(ma.LabelsPath!), File.ReadAllBytes(mb.LabelsPath!));
        foreach (var f in Directory.GetFiles(Path.Combine(a, "images")))
            Assert.Equal(File.ReadAllBytes(f), File.ReadAllBytes(Path.Combine(b, "images", Path.GetFileName(f))));
        Assert.NotEqual(File.ReadAllBytes(ma.ManifestPath), File.ReadAllBytes(mc.ManifestPath));
        // The training manifest passes the trainer's strict reader; the labels carry the attributes.
        var recs = JsonlManifest.ReadImageCaptions(ma.ManifestPath, skipBad: false, out int skipped);
        Assert.Equal(25, recs.Count);
        Assert.Equal(0, skipped);
        var labels = SyntheticTestFiles.ReadJsonl(ma.LabelsPath!);
        for (int i = 0; i < labels.Count; i++)
        {
            Assert.Equal(recs[i].Caption, SyntheticTestFiles.Str(labels[i], "caption"));
            Assert.Equal(2 * 64, SKBitmap.Decode(recs[i].Image).Width * 2);
        }
        var typed = SyntheticLabels.ReadImages(ma.LabelsPath!);
        Assert.Equal(recs.Select(r => r.Image), typed.Select(t => t.Image));
        Assert.All(typed, t => Assert.Equal(t.Attributes.Captioned().ToList(), ImageCaptionGrammar.Parse(t.Caption).Captioned().ToList()));
        Assert.Equal(112, SKBitmap.Decode(ImageDataMaker.Make(o with { Count = 1, Size = 112 }, c).ManifestPath.Replace("manifest.jsonl", "images/000000.png")).Width);
    }

    [Fact]
    public void HeldOutCombinationsNeverAppearInTrainAndAlwaysInHeldOutSets()
    {
        var held = new[] { ColourShape.Parse("green triangle"), ColourShape.Parse("red circle") };
        // A single held-out pair must not stall overlap sampling (its colour is excluded from the other shape).
        Assert.Equal(20, ImageDataMaker.Make(new ImageMakerOptions(20, Seed: 1, Size: 32, HeldOut: held[..1], Mode: HeldOutMode.Only, Kinds: new[] { "overlap" }), SyntheticTestFiles.NewDir("held-one")).Count);
        var train = ImageDataMaker.Make(new ImageMakerOptions(300, Seed: 5, Size: 32, HeldOut: held, Mode: HeldOutMode.Exclude, Kinds: new[] { "single", "count", "overlap" }), SyntheticTestFiles.NewDir("held-train"));
        var eval = ImageDataMaker.Make(new ImageMakerOptions(60, Seed: 6, Size: 32, HeldOut: held, Mode: HeldOutMode.Only), SyntheticTestFiles.NewDir("held-eval"));
        bool IsHeld(string? c, string? s) => held.Contains(new ColourShape(c ?? "", s ?? ""));
        var seenPairs = new HashSet<string>();
        foreach (var l in SyntheticTestFiles.ReadJsonl(train.LabelsPath!))
        {
            string? c = SyntheticTestFiles.Str(l, "colour"), s = SyntheticTestFiles.Str(l, "shape");
            Assert.False(IsHeld(c, s), $"held-out pair in train: {l}");
            Assert.False(IsHeld(SyntheticTestFiles.Str(l, "colour2"), SyntheticTestFiles.Str(l, "shape2")), $"held-out pair in train: {l}");
            seenPairs.Add(c + " " + s);
        }
        Assert.True(seenPairs.Count > 25, "training set should still cover most colour+shape pairs");
        foreach (var l in SyntheticTestFiles.ReadJsonl(eval.LabelsPath!))
            Assert.True(IsHeld(SyntheticTestFiles.Str(l, "colour"), SyntheticTestFiles.Str(l, "shape")) || IsHeld(SyntheticTestFiles.Str(l, "colour2"), SyntheticTestFiles.Str(l, "shape2")), $"eval item without a held-out pair: {l}");
    }

    [Fact]
    public void RenderedPixelsMatchColourPositionAndSize()
    {
        const int n = 64;
        var set = ImageDataMaker.Make(new ImageMakerOptions(40, Seed: 3, Size: n, Kinds: new[] { "single" }), SyntheticTestFiles.NewDir("img-px"));
        foreach (var l in SyntheticTestFiles.ReadJsonl(set.LabelsPath!))
        {
            using var bmp = SKBitmap.Decode(Path.Combine(set.Directory, SyntheticTestFiles.Str(l, "image")!));
            var bg = ShapeScenes.Background(SyntheticTestFiles.Str(l, "background")!);
            int x0 = n, y0 = n, x1 = -1, y1 = -1;
            for (int y = 0; y < n; y++)
                for (int x = 0; x < n; x++)
                    if (bmp.GetPixel(x, y) != bg) { x0 = Math.Min(x0, x); x1 = Math.Max(x1, x); y0 = Math.Min(y0, y); y1 = Math.Max(y1, y); }
            Assert.True(x1 >= 0, "nothing drawn");
            double cx = (x0 + x1 + 1) / 2.0 / n, cy = (y0 + y1 + 1) / 2.0 / n, extent = Math.Max(x1 - x0 + 1, y1 - y0 + 1) / (double)n;
            var centre = bmp.GetPixel((x0 + x1) / 2, (y0 + y1) / 2);
            var want = ShapeScenes.Colour(SyntheticTestFiles.Str(l, "colour")!);
            string caption = SyntheticTestFiles.Str(l, "caption")!;
            Assert.True(Math.Abs(centre.Red - want.Red) + Math.Abs(centre.Green - want.Green) + Math.Abs(centre.Blue - want.Blue) <= 6, $"{caption}: centre pixel {centre}, want {want}");
            switch (SyntheticTestFiles.Str(l, "position"))
            {
                case "left": Assert.True(cx < 0.4, caption + $" cx={cx}"); break;
                case "right": Assert.True(cx > 0.6, caption + $" cx={cx}"); break;
                case "top": Assert.True(cy < 0.4, caption + $" cy={cy}"); break;
                case "bottom": Assert.True(cy > 0.6, caption + $" cy={cy}"); break;
                default: Assert.True(cx is > 0.4 and < 0.6 && cy is > 0.38 and < 0.62, caption + $" c=({cx},{cy})"); break;
            }
            if (SyntheticTestFiles.Str(l, "size") == "large") Assert.True(extent >= 0.3, caption + $" extent={extent}");
            else Assert.True(extent <= 0.28, caption + $" extent={extent}");
        }
    }

    [Fact]
    public void CountOverlapAndWordScenesDrawWhatTheyDescribe()
    {
        const int n = 64;
        var set = ImageDataMaker.Make(new ImageMakerOptions(30, Seed: 9, Size: n, Kinds: new[] { "count", "overlap", "word", "number" }), SyntheticTestFiles.NewDir("img-count"));
        int counted = 0, printed = 0, overlaps = 0;
        foreach (var l in SyntheticTestFiles.ReadJsonl(set.LabelsPath!))
        {
            using var bmp = SKBitmap.Decode(Path.Combine(set.Directory, SyntheticTestFiles.Str(l, "image")!));
            if (SyntheticTestFiles.Str(l, "kind") == "count")
            {
                // Count connected blobs (8-neighbour) of pixels near the shape colour; antialiased star tips can
                // leave a few stray pixels, so blobs under 5 px are not counted.
                var want = ShapeScenes.Colour(SyntheticTestFiles.Str(l, "colour")!);
                bool Near(int x, int y) { var p = bmp.GetPixel(x, y); return Math.Abs(p.Red - want.Red) + Math.Abs(p.Green - want.Green) + Math.Abs(p.Blue - want.Blue) < 90; }
                var seen = new bool[n, n];
                int blobs = 0;
                for (int y = 0; y < n; y++)
                    for (int x = 0; x < n; x++)
                    {
                        if (seen[x, y] || !Near(x, y)) continue;
                        int area = 0;
                        var stack = new Stack<(int, int)>();
                        stack.Push((x, y));
                        seen[x, y] = true;
                        while (stack.Count > 0)
                        {
                            var (px, py) = stack.Pop();
                            area++;
                            for (int dy = -1; dy <= 1; dy++)
                                for (int dx = -1; dx <= 1; dx++)
                                {
                                    int qx = px + dx, qy = py + dy;
                                    if (qx >= 0 && qy >= 0 && qx < n && qy < n && !seen[qx, qy] && Near(qx, qy)) { seen[qx, qy] = true; stack.Push((qx, qy)); }
                                }
                        }
                        if (area >= 5) blobs++;
                    }
                Assert.True((SyntheticTestFiles.Str(l, "count") == "two" ? 2 : 3) == blobs, $"{SyntheticTestFiles.Str(l, "caption")} ({SyntheticTestFiles.Str(l, "image")}): {blobs} blobs");
                counted++;
            }
            else if (SyntheticTestFiles.Str(l, "kind") == "overlap")
            {
                // Both colours are visible: the front shape whole, the back one at least in part.
                int Px(SKColor c) { int k = 0; for (int y = 0; y < n; y++) for (int x = 0; x < n; x++) if (bmp.GetPixel(x, y) == c) k++; return k; }
                int front = Px(ShapeScenes.Colour(SyntheticTestFiles.Str(l, "colour")!)), back = Px(ShapeScenes.Colour(SyntheticTestFiles.Str(l, "colour2")!));
                Assert.True(front > 60 && back > 20, $"{SyntheticTestFiles.Str(l, "caption")}: front {front} px, back {back} px");
                overlaps++;
            }
            else
            {
                var bg = ShapeScenes.Background(SyntheticTestFiles.Str(l, "background")!);
                int ink = 0;
                for (int y = 0; y < n; y++) for (int x = 0; x < n; x++) if (bmp.GetPixel(x, y) != bg) ink++;
                Assert.True(ink > 15, $"{SyntheticTestFiles.Str(l, "caption")}: only {ink} ink pixels");
                printed++;
            }
        }
        Assert.True(counted > 0 && printed > 0 && overlaps > 0);
    }

    [Fact]
    public void BadLabelRecordNamesFileAndLine()
    {
        string dir = SyntheticTestFiles.NewDir("lbl"), p = Path.Combine(dir, "labels.jsonl");
        File.WriteAllText(p, "{\"image\":\"missing.png\",\"caption\":\"the word CAT\",\"kind\":\"word\",\"background\":\"white\"}\n");
        var e = Assert.Throws<DataFormatException>(() => SyntheticLabels.ReadImages(p));
        Assert.Contains("labels.jsonl:1", e.Message);
        Assert.Contains("missing.png", e.Message);
    }

    [Fact]
    public void BadOptionsNameTheProblem()
    {
        var e = Assert.Throws<SyntheticDataException>(() => ColourShape.Parse("teal triangle"));
        Assert.Contains("teal", e.Message);
        e = Assert.Throws<SyntheticDataException>(() => ImageDataMaker.Make(new ImageMakerOptions(1, Kinds: new[] { "hexagon" }), SyntheticTestFiles.NewDir("bad")));
        Assert.Contains("hexagon", e.Message);
        e = Assert.Throws<SyntheticDataException>(() => ImageDataMaker.Make(new ImageMakerOptions(1, Mode: HeldOutMode.Only), SyntheticTestFiles.NewDir("bad")));
        Assert.Contains("Only", e.Message);
    }
}

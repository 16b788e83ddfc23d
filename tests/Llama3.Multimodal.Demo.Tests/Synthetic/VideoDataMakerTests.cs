namespace Llama3.Multimodal.Demo.Tests;

public class VideoDataMakerTests
{
    [Fact]
    public void ClipsHaveTheFrameCountAndShowTheCaptionedEventsInOrder()
    {
        const int size = 64;
        var o = new VideoMakerOptions(8, Seed: 21, Size: size, Seconds: 2, Fps: 8);
        var a = VideoDataMaker.Make(o, SyntheticTestFiles.NewDir("vid-a"));
        var b = VideoDataMaker.Make(o, SyntheticTestFiles.NewDir("vid-b"));
        Assert.Equal(File.ReadAllBytes(a.ManifestPath), File.ReadAllBytes(b.ManifestPath));
        var recs = JsonlManifest.ReadVideoCaptions(a.ManifestPath, skipBad: false, out _);
        Assert.Equal(8, recs.Count);
        Assert.All(SyntheticLabels.ReadVideos(a.LabelsPath!), l => Assert.Equal((16, 8), (l.Frames, l.Fps)));
        int moves = 0, appears = 0, turns = 0;
        foreach (var r in recs)
        {
            Assert.Equal(File.ReadAllBytes(r.Video), File.ReadAllBytes(Path.Combine(b.Directory, "video", Path.GetFileName(r.Video))));
            var frames = SyntheticTestFiles.DecodeRgb24(r.Video, size);
            Assert.Equal(16, frames.Count);
            var events = VideoCaptionGrammar.Parse(r.Caption)!;
            Assert.Equal(2, events.Count);
            var words = events[0].Subject.Split(' ');
            var c = ShapeScenes.Colour(words[1]);
            var col = (c.Red, c.Green, c.Blue);
            var first = SyntheticTestFiles.Centroid(frames[0], size, col);
            var mid = SyntheticTestFiles.Centroid(frames[7], size, col);
            switch (events[0].Verb)
            {
                case "moves":
                    moves++;
                    Assert.NotNull(first); Assert.NotNull(mid);
                    AssertMoved(r.Caption, first!.Value, mid!.Value, events[0].Argument!);
                    break;
                case "appears":
                    appears++;
                    Assert.Null(first);
                    Assert.NotNull(mid);
                    break;
                case "turns":
                    turns++;
                    var n = ShapeScenes.Colour(events[0].Argument!);
                    Assert.NotNull(first);
                    Assert.Null(mid);
                    Assert.NotNull(SyntheticTestFiles.Centroid(frames[7], size, (n.Red, n.Green, n.Blue)));
                    break;
            }
            // The second half: the first shape (in its colour after event 1) does event 2.
            var now = events[0].Verb == "turns" ? ShapeScenes.Colour(events[0].Argument!) : c;
            var nowCol = (now.Red, now.Green, now.Blue);
            var s8 = SyntheticTestFiles.Centroid(frames[8], size, nowCol);
            var s15 = SyntheticTestFiles.Centroid(frames[15], size, nowCol);
            if (events[1].Subject == "it")
            {
                Assert.NotNull(s8);
                switch (events[1].Verb)
                {
                    case "moves":
                        AssertMoved(r.Caption, s8!.Value, s15!.Value, events[1].Argument!);
                        break;
                    case "turns":
                        Assert.Null(s15);
                        var t = ShapeScenes.Colour(events[1].Argument!);
                        Assert.NotNull(SyntheticTestFiles.Centroid(frames[15], size, (t.Red, t.Green, t.Blue)));
                        break;
                    case "disappears":
                        Assert.Null(s15);
                        break;
                }
            }
            if (events[1].Verb == "appears" && events[1].Subject != "it")
            {
                var bc = ShapeScenes.Colour(events[1].Subject.Split(' ')[1]);
                int bBefore = Count(frames[8], size, (bc.Red, bc.Green, bc.Blue)), bAfter = Count(frames[15], size, (bc.Red, bc.Green, bc.Blue));
                Assert.True(bAfter > bBefore + 20, $"{r.Caption}: second shape pixels {bBefore} → {bAfter}");
            }
        }
        Assert.True(moves > 0 && appears > 0 && turns > 0, $"seed should cover moves/appears/turns ({moves}/{appears}/{turns})");
    }

    static void AssertMoved(string caption, (double X, double Y) from, (double X, double Y) to, string direction)
    {
        double dx = to.X - from.X, dy = to.Y - from.Y;
        bool ok = direction switch
        {
            "left" => dx < -0.15 && Math.Abs(dy) < 0.05,
            "right" => dx > 0.15 && Math.Abs(dy) < 0.05,
            "up" => dy < -0.15 && Math.Abs(dx) < 0.05,
            _ => dy > 0.15 && Math.Abs(dx) < 0.05,
        };
        Assert.True(ok, $"{caption}: moved ({dx:F3}, {dy:F3}), expected {direction}");
    }

    static int Count(byte[] rgb, int size, (int R, int G, int B) c)
    {
        int n = 0;
        for (int k = 0; k < size * size; k++)
            if (Math.Abs(rgb[3 * k] - c.R) + Math.Abs(rgb[3 * k + 1] - c.G) + Math.Abs(rgb[3 * k + 2] - c.B) < 60) n++;
        return n;
    }

    [Fact]
    public void BadVideoOptionsNameTheValue()
    {
        var e = Assert.Throws<SyntheticDataException>(() => VideoDataMaker.Make(new VideoMakerOptions(1, Size: 63), SyntheticTestFiles.NewDir("vid-bad")));
        Assert.Contains("63", e.Message);
    }
}

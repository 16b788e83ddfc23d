using System.Globalization;
using SkiaSharp;

namespace Llama3.Multimodal.Demo;

/// <summary>
/// Makes short H.264 MP4 clips of shapes that move, change colour, appear and disappear, captioned in time order
/// (<see cref="VideoCaptionGrammar"/>). Frames are drawn with SkiaSharp and piped as raw rgb24 into ffmpeg (no
/// temporary frame files). Writes <c>video/NNNNNN.mp4</c>, <c>manifest.jsonl</c> (<c>{"video","caption"}</c>) and
/// <c>labels.jsonl</c> (<c>{"video","caption","event1","event2","frames","fps","background"}</c>).
/// </summary>
public static class VideoDataMaker
{
    /// <summary>Makes the set into <paramref name="outDir"/>; throws <see cref="SyntheticDataException"/> naming ffmpeg if missing.</summary>
    public static MadeSet Make(VideoMakerOptions o, string outDir)
    {
        if (o.Count <= 0) throw new SyntheticDataException($"clip count must be positive (got {o.Count}).");
        if (o.Size < 32 || o.Size > 1024 || o.Size % 2 != 0) throw new SyntheticDataException($"video size {o.Size} must be even and in 32…1024 pixels.");
        if (o.Seconds < 1 || o.Seconds > 10) throw new SyntheticDataException($"clip length {o.Seconds} s is outside 1…10 s.");
        if (o.Fps < 2 || o.Fps > 30) throw new SyntheticDataException($"frame rate {o.Fps} is outside 2…30.");
        string ffmpeg = ExternalTool.Require("ffmpeg", "ffmpeg");
        var rng = new Random(o.Seed);
        var scripts = new VideoScript[o.Count];
        for (int i = 0; i < scripts.Length; i++) scripts[i] = VideoScript.Sample(rng);

        string root = Path.GetFullPath(outDir), dir = Path.Combine(root, "video");
        Directory.CreateDirectory(dir);
        var files = Enumerable.Range(0, scripts.Length).Select(i => Path.Combine(dir, $"{i:D6}.mp4")).ToArray();
        int n = o.Frames, size = o.Size;
        Parallel.For(0, scripts.Length, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, o.MaxParallelism) }, i =>
        {
            string tmp = files[i] + ".tmp.mp4";
            var args = new[]
            {
                "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                "-s", $"{size}x{size}", "-r", o.Fps.ToString(CultureInfo.InvariantCulture), "-i", "-",
                "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-threads", "1",
                "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-movflags", "+faststart", "-f", "mp4", tmp,
            };
            ExternalTool.Run(ffmpeg, args, writeStdin: s =>
            {
                using var bmp = new SKBitmap(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Opaque));
                var rgb = new byte[size * size * 3];
                for (int f = 0; f < n; f++) { scripts[i].RenderRgb24(f, n, size, bmp, rgb); s.Write(rgb); }
            });
            File.Move(tmp, files[i], overwrite: true);
        });

        var manifest = new List<string>();
        var labels = new List<string>();
        for (int i = 0; i < scripts.Length; i++)
        {
            string rel = ManifestLine.Relative(root, files[i]), caption = VideoCaptionGrammar.Caption(scripts[i].Events);
            manifest.Add(ManifestLine.Of(("video", rel), ("caption", caption)));
            labels.Add(ManifestLine.Of(("video", rel), ("caption", caption), ("event1", scripts[i].Events[0].ToString()),
                ("event2", scripts[i].Events[1].ToString()), ("frames", n), ("fps", o.Fps), ("background", scripts[i].Background)));
        }
        string mPath = Path.Combine(root, "manifest.jsonl"), lPath = Path.Combine(root, "labels.jsonl");
        ManifestLine.WriteAll(mPath, manifest);
        ManifestLine.WriteAll(lPath, labels);
        return new MadeSet(root, mPath, lPath, scripts.Length);
    }
}

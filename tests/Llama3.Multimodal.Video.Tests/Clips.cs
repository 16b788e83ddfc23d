using System.Diagnostics;

namespace Llama3.Multimodal.Video.Tests;

/// <summary>
/// Test clips rendered by ffmpeg on first use (nothing is checked in): a red 8×8 square on black that moves 4 px right
/// per frame (frame n at time n/10 s: x = 4n, y = 28, in a 256×64 picture), so every decoded frame tells its own frame number.
/// </summary>
internal static class Clips
{
    static readonly string Dir = Path.Combine(Path.GetTempPath(), "llama3mm-video-tests-" + Environment.ProcessId);
    static readonly object Gate = new();

    static Clips() => AppDomain.CurrentDomain.ProcessExit += (_, _) =>
    {
        try { if (Directory.Exists(Dir)) Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    };

    /// <summary>Width and height of the rendered picture.</summary>
    public const int W = 256, H = 64, Step = 4, Size = 8, Top = 28;

    /// <summary>Renders (once) <paramref name="frames"/> frames at 10 fps into <paramref name="name"/> with extra encoder arguments.</summary>
    public static string MovingSquare(string name, int frames, params string[] encode)
    {
        var filter = $"color=c=black:s={W}x{H}:r=10:d={frames / 10.0:0.###}[bg];color=c=red:s={Size}x{Size}:r=10[sq];" +
                     $"[bg][sq]overlay=x='floor({Step * 10}*t+0.5)':y={Top}:shortest=1";
        return Render(name, new[] { "-f", "lavfi", "-i", filter, "-frames:v", frames.ToString() }.Concat(encode).ToArray());
    }

    /// <summary>Runs ffmpeg with <paramref name="args"/> writing <paramref name="name"/> in the clip folder (once).</summary>
    public static string Render(string name, params string[] args)
    {
        lock (Gate)
        {
            Directory.CreateDirectory(Dir);
            string path = Path.Combine(Dir, name);
            if (File.Exists(path)) return path;
            string tmp = Path.Combine(Dir, "tmp-" + name);
            Run("ffmpeg", new[] { "-v", "error", "-y", "-nostdin" }.Concat(args).Append(tmp).ToArray());
            File.Move(tmp, path);
            return path;
        }
    }

    /// <summary>Path of a file in the clip folder (for hand-made bad files).</summary>
    public static string PathOf(string name) { Directory.CreateDirectory(Dir); return Path.Combine(Dir, name); }

    static void Run(string exe, string[] args)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process p;
        try { p = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("These tests render clips with ffmpeg, which is not installed: run apt-get install -y ffmpeg.", e);
        }
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"ffmpeg {string.Join(' ', args)} failed: {err}");
    }

    /// <summary>
    /// Centroid (x, y) of the red pixels of frame <paramref name="i"/> of <paramref name="pixels"/> ([N, H, W, 3]
    /// uint8), or null when there are none; "red" = R &gt; 128 and G, B &lt; 100 (survives lossy codecs).
    /// </summary>
    public static (double X, double Y)? RedCentroid(TorchSharp.torch.Tensor pixels, int i)
    {
        int h = (int)pixels.shape[1], w = (int)pixels.shape[2];
        using var frame = pixels[i].contiguous();
        var px = frame.bytes;
        double sx = 0, sy = 0; long count = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int o = (y * w + x) * 3;
                if (px[o] > 128 && px[o + 1] < 100 && px[o + 2] < 100) { sx += x; sy += y; count++; }
            }
        return count == 0 ? null : (sx / count, sy / count);
    }

    /// <summary>The frame number a decoded frame shows, from the square's centroid, at horizontal scale <paramref name="sx"/>.</summary>
    public static int FrameNumberFromX(double cx, double sx = 1.0) => (int)Math.Round((cx / sx - (Size - 1) / 2.0) / Step);
}

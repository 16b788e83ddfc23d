using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Llama3.Multimodal.Demo.Tests;

/// <summary>Temporary folders, JSONL reading and media decoding shared by the synthetic data tests.</summary>
internal static class SyntheticTestFiles
{
    // All folders of one test run live under one root, removed when the test process exits.
    static readonly string Root = CreateRoot();

    static string CreateRoot()
    {
        // The test host is not always given a clean exit, so also sweep roots of earlier runs older than two hours.
        foreach (var old in Directory.GetDirectories(Path.GetTempPath(), "mm-synth-tests-*"))
            if (Directory.GetLastWriteTimeUtc(old) < DateTime.UtcNow.AddHours(-2))
                try { Directory.Delete(old, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        string r = Path.Combine(Path.GetTempPath(), "mm-synth-tests-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(r);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { Directory.Delete(r, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { } };
        return r;
    }

    public static string NewDir(string tag)
    {
        string d = Path.Combine(Root, tag + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(d);
        return d;
    }

    public static List<JsonObject> ReadJsonl(string path) =>
        File.ReadAllLines(path).Where(l => l.Length > 0).Select(l => (JsonObject)JsonNode.Parse(l)!).ToList();

    public static string? Str(JsonObject o, string key) => o[key]?.GetValue<string>();

    /// <summary>Decodes a video with the ffmpeg binary to packed rgb24 frames.</summary>
    public static List<byte[]> DecodeRgb24(string video, int size)
    {
        var psi = new ProcessStartInfo("ffmpeg") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-hide_banner", "-loglevel", "error", "-i", video, "-f", "rawvideo", "-pix_fmt", "rgb24", "-" }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var ms = new MemoryStream();
        p.StandardOutput.BaseStream.CopyTo(ms);
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, "ffmpeg decode failed: " + err.Result);
        var all = ms.ToArray();
        int frame = size * size * 3;
        Assert.Equal(0, all.Length % frame);
        return Enumerable.Range(0, all.Length / frame).Select(i => all.AsSpan(i * frame, frame).ToArray()).ToList();
    }

    /// <summary>Centroid (fractions of the side) of pixels within <paramref name="tol"/> of a colour, or null if fewer than 10.</summary>
    public static (double X, double Y)? Centroid(byte[] rgb, int size, (int R, int G, int B) c, int tol = 60)
    {
        double sx = 0, sy = 0;
        int n = 0;
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
            {
                int k = 3 * (y * size + x);
                int d = Math.Abs(rgb[k] - c.R) + Math.Abs(rgb[k + 1] - c.G) + Math.Abs(rgb[k + 2] - c.B);
                if (d < tol) { sx += x; sy += y; n++; }
            }
        return n < 10 ? null : ((sx / n + 0.5) / size, (sy / n + 0.5) / size);
    }
}

using System.ComponentModel;
using System.Diagnostics;
using System.Text;
using Llama3.Multimodal.Vision;

namespace Llama3.Multimodal.Video;

/// <summary>
/// Locates and runs the <c>ffmpeg</c>/<c>ffprobe</c> executables. The folder comes from the caller, else the
/// <c>LLAMA3MM_FFMPEG_DIR</c> environment variable, else <c>PATH</c>.
/// </summary>
internal sealed class FfmpegTools
{
    public string FfmpegPath { get; }
    public string FfprobePath { get; }

    FfmpegTools(string ffmpeg, string ffprobe) { FfmpegPath = ffmpeg; FfprobePath = ffprobe; }

    /// <summary>Finds both tools; throws <see cref="MediaDecodeException"/> for <paramref name="forFile"/> when one is missing.</summary>
    public static FfmpegTools Locate(string? directory, string forFile)
    {
        directory ??= Environment.GetEnvironmentVariable("LLAMA3MM_FFMPEG_DIR");
        string? ffmpeg = Find("ffmpeg", directory), ffprobe = Find("ffprobe", directory);
        if (ffmpeg is null || ffprobe is null)
        {
            string where = directory is null ? "on PATH" : $"in '{directory}'";
            string which = ffmpeg is null && ffprobe is null ? "ffmpeg and ffprobe" : ffmpeg is null ? "ffmpeg" : "ffprobe";
            throw new MediaDecodeException(forFile,
                $"cannot decode video: {which} not found {where}. Install ffmpeg (Debian/Ubuntu: apt-get install -y ffmpeg) " +
                "or point LLAMA3MM_FFMPEG_DIR at the folder holding ffmpeg and ffprobe.");
        }
        return new FfmpegTools(ffmpeg, ffprobe);
    }

    static string? Find(string name, string? directory)
    {
        string exe = OperatingSystem.IsWindows() ? name + ".exe" : name;
        if (directory is not null)
        {
            string p = Path.Combine(directory, exe);
            return File.Exists(p) ? p : null;
        }
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string p = Path.Combine(dir, exe);
            if (File.Exists(p)) return p;
        }
        return null;
    }

    /// <summary>Runs a tool to completion and returns (exit code, stdout text, stderr text).</summary>
    public static (int Code, string Out, string Err) RunText(string exe, IEnumerable<string> args, string forFile)
    {
        using var p = Start(exe, args, forFile);
        var err = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output, err.Result);
    }

    /// <summary>
    /// Runs a tool that writes raw bytes to stdout; <paramref name="consume"/> reads the stream (it may stop early, the
    /// rest is drained). Returns (exit code, stderr text).
    /// </summary>
    public static (int Code, string Err) RunBinary(string exe, IEnumerable<string> args, string forFile, Action<Stream> consume)
    {
        using var p = Start(exe, args, forFile);
        var err = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.BaseStream;
        try
        {
            consume(stdout);
            stdout.CopyTo(Stream.Null);
        }
        catch
        {
            // nobody drains the pipe any more: stop the tool instead of waiting on it
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            throw;
        }
        finally
        {
            p.WaitForExit();
        }
        return (p.ExitCode, err.Result);
    }

    static Process Start(string exe, IEnumerable<string> args, string forFile)
    {
        var psi = new ProcessStartInfo(exe)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            CreateNoWindow = true,
            StandardErrorEncoding = Encoding.UTF8,
            StandardOutputEncoding = Encoding.UTF8,
        };
        foreach (string a in args) psi.ArgumentList.Add(a);
        try
        {
            var p = Process.Start(psi) ?? throw new MediaDecodeException(forFile, $"could not start {exe}.");
            p.StandardInput.Close();
            return p;
        }
        catch (Win32Exception e)
        {
            throw new MediaDecodeException(forFile, $"could not start {exe}: {e.Message}", e);
        }
    }

    /// <summary>The last meaningful line of a tool's stderr, for error messages.</summary>
    public static string LastLine(string stderr)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.Length == 0 ? "(no message)" : lines[^1];
    }
}

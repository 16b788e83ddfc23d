using Llama3.Multimodal.Text;
using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;

namespace Llama3.Multimodal.Speech;

/// <summary>
/// Decodes any format ffmpeg understands (mp3, flac, ogg, m4a, …) by running the <c>ffmpeg</c>/<c>ffprobe</c> binaries and
/// reading raw 32-bit float PCM from a pipe (no temporary files). The first audio stream is used, at its own sample rate
/// and channel count; downmixing and resampling are done by the caller.
/// </summary>
public static class FfmpegDecoder
{
    /// <summary>
    /// The ffmpeg executable: the <c>LLAMA3MM_FFMPEG</c> environment variable when set, else <c>ffmpeg</c> on the PATH.
    /// ffprobe is looked up next to it.
    /// </summary>
    public static string FfmpegPath => Environment.GetEnvironmentVariable("LLAMA3MM_FFMPEG") is { Length: > 0 } p ? p : "ffmpeg";

    static string ProbeFor(string ff)
    {
        string dir = Path.GetDirectoryName(ff) ?? "";
        string name = Path.GetFileName(ff).Replace("ffmpeg", "ffprobe", StringComparison.Ordinal);
        return dir.Length == 0 ? name : Path.Combine(dir, name);
    }

    /// <summary>
    /// Decodes <paramref name="path"/> with the ffmpeg at <paramref name="ffmpegPath"/> (default <see cref="FfmpegPath"/>);
    /// throws <see cref="MediaDecodeException"/> naming the file on any failure.
    /// </summary>
    public static AudioClip Decode(string path, string? ffmpegPath = null)
    {
        string ffmpeg = ffmpegPath ?? FfmpegPath;
        var probe = Run(ProbeFor(ffmpeg), new[] { "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=sample_rate,channels", "-of", "csv=p=0", path }, path, out string probeErr);
        var text = System.Text.Encoding.ASCII.GetString(probe).Trim();
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        if (text.Length == 0 || parts.Length < 2
            || !int.TryParse(parts[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out int rate)
            || !int.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out int channels)
            || rate <= 0 || channels <= 0)
        {
            string why = probeErr.Length > 0 ? probeErr : text.Length == 0 ? "no audio stream found" : $"unexpected stream info '{text}'";
            throw new MediaDecodeException($"{path}: cannot decode audio ({why}).");
        }
        var pcm = Run(ffmpeg, new[] { "-nostdin", "-v", "error", "-i", path, "-map", "0:a:0", "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1" }, path, out string err);
        if (pcm.Length == 0) throw new MediaDecodeException($"{path}: ffmpeg decoded no audio samples{(err.Length > 0 ? $" ({err})" : "")}.");
        int frameBytes = 4 * channels;
        if (pcm.Length % frameBytes != 0)
            throw new MediaDecodeException($"{path}: ffmpeg returned {pcm.Length} bytes, not a whole number of {channels}-channel float frames.");
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("f32le PCM needs a little-endian host.");
        var samples = new float[pcm.Length / 4];
        Buffer.BlockCopy(pcm, 0, samples, 0, pcm.Length);
        return new AudioClip(samples, rate, channels);
    }

    /// <summary>
    /// Decodes encoded audio held in memory (e.g. a FLAC or MP3 member of a tar shard or a Parquet cell): ffmpeg reads it
    /// as an <see cref="InMemoryFile"/>, seekable like the file it came from, so the samples equal those of the file.
    /// <paramref name="source"/> names the data in errors.
    /// </summary>
    public static AudioClip Decode(byte[] data, string source, string? ffmpegPath = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.Length == 0) throw new MediaDecodeException($"{source}: the audio data is empty.");
        using var file = new InMemoryFile(data, "audio");
        try { return Decode(file.Path, ffmpegPath); }
        catch (MediaDecodeException e) { throw new MediaDecodeException(e.Message.Replace(file.Path, source), e); }
    }

    static byte[] Run(string exe, string[] args, string path, out string stderr)
    {
        var psi = new ProcessStartInfo(exe)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = false,
            UseShellExecute = false, CreateNoWindow = true,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process proc;
        try
        {
            proc = Process.Start(psi) ?? throw new MediaDecodeException($"{path}: could not start '{exe}'.");
        }
        catch (Win32Exception e)
        {
            throw new MediaDecodeException(
                $"{path}: this format needs ffmpeg, but '{exe}' could not be started ({e.Message}). Install ffmpeg (e.g. `apt-get install -y ffmpeg`) or set LLAMA3MM_FFMPEG to the ffmpeg binary; WAV files are read without it.", e);
        }
        using (proc)
        {
            var errTask = proc.StandardError.ReadToEndAsync();
            using var ms = new MemoryStream();
            proc.StandardOutput.BaseStream.CopyTo(ms);
            proc.WaitForExit();
            stderr = errTask.Result.Trim();
            if (stderr.Length > 400) stderr = stderr[..400] + "…";
            if (proc.ExitCode != 0)
                throw new MediaDecodeException($"{path}: {Path.GetFileName(exe)} failed with exit code {proc.ExitCode}{(stderr.Length > 0 ? $": {stderr}" : "")}.");
            return ms.ToArray();
        }
    }
}

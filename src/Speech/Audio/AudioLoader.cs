using Llama3.Multimodal.Text;
namespace Llama3.Multimodal.Speech;

/// <summary>
/// Loads audio for the speech model: WAV through <see cref="WavReader"/>, everything else through
/// <see cref="FfmpegDecoder"/>; then downmixes to mono and resamples to <see cref="SampleRate"/> with
/// <see cref="Resampler"/>. The format is recognised by content, not by file extension.
/// </summary>
public static class AudioLoader
{
    /// <summary>The model's sample rate: 16 kHz.</summary>
    public const int SampleRate = 16000;
    /// <summary>Longest segment the model takes at once (Llama 3 paper §8: 60 s = 6000 log-mel frames).</summary>
    public const double MaxSegmentSeconds = 60.0;

    /// <summary>Decodes <paramref name="path"/> at its own rate and channel count.</summary>
    public static AudioClip Decode(string path)
    {
        if (!File.Exists(path)) throw new MediaDecodeException($"{path}: file not found.");
        long length;
        var head = new byte[12];
        try
        {
            using var f = File.OpenRead(path);
            length = f.Length;
            f.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new MediaDecodeException($"{path}: cannot read the file ({e.Message}).", e);
        }
        if (length == 0) throw new MediaDecodeException($"{path}: the file is empty.");
        // RIFF/WAVE is ours; everything else (RF64, AVI, mp3, flac, ogg, m4a …) goes to ffmpeg.
        return WavReader.LooksLikeWav(head) ? WavReader.Read(path) : FfmpegDecoder.Decode(path);
    }

    /// <summary>
    /// Decodes encoded audio held in memory (a tar-shard member, a Parquet cell) at its own rate and channel count: WAV
    /// directly, anything else through ffmpeg reading it as an in-memory file (the samples equal the file's).
    /// <paramref name="source"/> names the data in errors.
    /// </summary>
    public static AudioClip Decode(byte[] data, string source)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.Length == 0) throw new MediaDecodeException($"{source}: the audio data is empty.");
        return WavReader.LooksLikeWav(data.AsSpan(0, Math.Min(12, data.Length))) ? WavReader.Parse(data, source) : FfmpegDecoder.Decode(data, source);
    }

    /// <summary>Decodes in-memory audio (see <see cref="Decode(byte[], string)"/>) to 16 kHz mono samples in [-1, 1].</summary>
    public static float[] Load(byte[] data, string source) => ToModelRate(Decode(data, source));

    /// <summary>Decodes <paramref name="path"/> to 16 kHz mono samples in [-1, 1].</summary>
    public static float[] Load(string path) => ToModelRate(Decode(path));

    /// <summary>Downmixes <paramref name="clip"/> to mono and resamples it to 16 kHz.</summary>
    public static float[] ToModelRate(AudioClip clip) => Resampler.Resample(clip.ToMono(), clip.SampleRate, SampleRate);

    /// <summary>
    /// Splits 16 kHz samples into consecutive segments of at most <paramref name="maxSeconds"/> (default 60 s), of
    /// near-equal length so no segment is a sliver.
    /// </summary>
    public static IReadOnlyList<float[]> Segments(float[] samples, double maxSeconds = MaxSegmentSeconds)
    {
        if (maxSeconds <= 0) throw new ArgumentOutOfRangeException(nameof(maxSeconds), $"segment length {maxSeconds} s must be positive.");
        long max = (long)Math.Floor(maxSeconds * SampleRate);
        if (samples.LongLength <= max) return new[] { samples };
        long count = (samples.LongLength + max - 1) / max;
        long size = (samples.LongLength + count - 1) / count;
        var list = new List<float[]>();
        for (long s = 0; s < samples.LongLength; s += size)
            list.Add(samples.AsSpan((int)s, (int)Math.Min(size, samples.LongLength - s)).ToArray());
        return list;
    }
}

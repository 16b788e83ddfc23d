namespace Llama3.Multimodal.Speech;

/// <summary>
/// Decoded audio: samples interleaved by channel (<c>Samples[frame·Channels + channel]</c>), as floats in [-1, 1].
/// </summary>
/// <param name="Samples">Interleaved samples.</param>
/// <param name="SampleRate">Samples per second per channel (Hz).</param>
/// <param name="Channels">Number of channels (≥ 1).</param>
public sealed record AudioClip(float[] Samples, int SampleRate, int Channels)
{
    /// <summary>Frames (samples per channel).</summary>
    public long Frames => Samples.LongLength / Channels;

    /// <summary>Duration in seconds.</summary>
    public double Seconds => (double)Frames / SampleRate;

    /// <summary>Averages the channels into one (mono is returned as is).</summary>
    public float[] ToMono()
    {
        if (Channels == 1) return Samples;
        var mono = new float[Frames];
        float scale = 1f / Channels;
        for (long f = 0; f < mono.LongLength; f++)
        {
            float sum = 0;
            long o = f * Channels;
            for (int c = 0; c < Channels; c++) sum += Samples[o + c];
            mono[f] = sum * scale;
        }
        return mono;
    }
}

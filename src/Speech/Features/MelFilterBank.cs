namespace Llama3.Multimodal.Speech;

/// <summary>
/// Slaney-scale triangular mel filters with Slaney area normalisation (librosa's <c>filters.mel</c> defaults, as used by
/// Whisper), computed in double precision.
/// </summary>
public static class MelFilterBank
{
    const double FSp = 200.0 / 3, MinLogHz = 1000, MinLogMel = 15;
    static readonly double LogStep = Math.Log(6.4) / 27;

    /// <summary>Slaney mel of a frequency in Hz (linear below 1 kHz, logarithmic above).</summary>
    public static double HzToMel(double hz) => hz < MinLogHz ? hz / FSp : MinLogMel + Math.Log(hz / MinLogHz) / LogStep;

    /// <summary>Inverse of <see cref="HzToMel"/>.</summary>
    public static double MelToHz(double mel) => mel < MinLogMel ? mel * FSp : MinLogHz * Math.Exp(LogStep * (mel - MinLogMel));

    /// <summary>
    /// Filter weights [melBins, nFft/2 + 1] (row-major) for <paramref name="sampleRate"/> from <paramref name="fMin"/> to
    /// <paramref name="fMax"/> Hz.
    /// </summary>
    public static double[,] Create(int sampleRate, int nFft, int melBins, double fMin, double fMax)
    {
        int bins = nFft / 2 + 1;
        var fft = new double[bins];
        for (int k = 0; k < bins; k++) fft[k] = (double)k * sampleRate / nFft;
        double mMin = HzToMel(fMin), mMax = HzToMel(fMax);
        var f = new double[melBins + 2];
        for (int i = 0; i < f.Length; i++) f[i] = MelToHz(mMin + (mMax - mMin) * i / (melBins + 1));
        var w = new double[melBins, bins];
        for (int i = 0; i < melBins; i++)
        {
            double norm = 2.0 / (f[i + 2] - f[i]);
            for (int k = 0; k < bins; k++)
            {
                double lower = (fft[k] - f[i]) / (f[i + 1] - f[i]);
                double upper = (f[i + 2] - fft[k]) / (f[i + 2] - f[i + 1]);
                w[i, k] = Math.Max(0, Math.Min(lower, upper)) * norm;
            }
        }
        return w;
    }
}

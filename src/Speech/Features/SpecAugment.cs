using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech;

/// <summary>
/// SpecAugment masking of log-mel features for training (the Conformer paper's policy: mask parameter F = 27 and ten time
/// masks of at most p_S = 5 % of the utterance each; two frequency masks as in SpecAugment's LibriSpeech policies).
/// Masked cells take <c>fill</c> per bin (the feature normaliser's mean, so they read as 0 after normalisation). Only the
/// real frames of each utterance (its length) are masked. Draws from the given generator, so a seeded run is
/// reproducible and resumes exactly.
/// </summary>
public static class SpecAugment
{
    /// <summary>Frequency masks per utterance.</summary>
    public const int FrequencyMasks = 2;
    /// <summary>Widest frequency mask in bins (F).</summary>
    public const int MaxFrequencyWidth = 27;
    /// <summary>Time masks per utterance.</summary>
    public const int TimeMasks = 10;
    /// <summary>Widest time mask as a fraction of the utterance's frames (p_S).</summary>
    public const double MaxTimeRatio = 0.05;

    /// <summary>
    /// Returns <paramref name="features"/> [B, T, bins] with the masked cells replaced by <paramref name="fill"/> [bins];
    /// <paramref name="lengths"/> [B] are the real frame counts.
    /// </summary>
    public static Tensor Apply(Tensor features, Tensor lengths, Tensor fill, Generator generator)
    {
        if (features.dim() != 3) throw new ArgumentException($"features must be [B, T, bins], got [{string.Join(", ", features.shape)}].");
        long b = features.shape[0], t = features.shape[1], bins = features.shape[2];
        if (fill.numel() != bins) throw new ArgumentException($"fill has {fill.numel()} values for {bins} bins.");
        using var scope = NewDisposeScope();
        int draws = 2 * (FrequencyMasks + TimeMasks);
        var u = torch.rand(new long[] { b, draws }, generator: generator).data<float>().ToArray();
        var len = lengths.to(ScalarType.Int64, CPU).data<long>().ToArray();
        var mask = new bool[b * t * bins];
        for (long i = 0; i < b; i++)
        {
            int k = (int)(i * draws);
            long n = Math.Min(len[i], t);
            for (int m = 0; m < FrequencyMasks; m++)
            {
                long w = (long)(u[k++] * (Math.Min(MaxFrequencyWidth, bins) + 1)), f0 = (long)(u[k++] * (bins - w + 1));
                for (long tt = 0; tt < n; tt++) for (long f = f0; f < f0 + w && f < bins; f++) mask[(i * t + tt) * bins + f] = true;
            }
            long maxT = (long)(MaxTimeRatio * n);
            for (int m = 0; m < TimeMasks; m++)
            {
                long w = (long)(u[k++] * (maxT + 1)), t0 = (long)(u[k++] * (n - w + 1));
                for (long tt = t0; tt < t0 + w && tt < n; tt++) Array.Fill(mask, true, (int)((i * t + tt) * bins), (int)bins);
            }
        }
        var where = torch.tensor(mask, new long[] { b, t, bins }).to(features.device);
        var value = fill.to(features.dtype, features.device).view(1, 1, bins).expand(b, t, bins);
        return torch.where(where, value, features).MoveToOuterDisposeScope();
    }
}

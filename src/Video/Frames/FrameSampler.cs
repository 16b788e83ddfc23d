namespace Llama3.Multimodal.Video;

/// <summary>Which frames of a clip to take (Llama 3 paper §7.2: N frames uniformly over the whole clip).</summary>
public static class FrameSampler
{
    /// <summary>
    /// <paramref name="count"/> frame indices spread evenly from the first frame (0) to the last
    /// (<paramref name="totalFrames"/> − 1): index i = round(i·(total − 1)/(count − 1)), halves rounded up. A clip with
    /// fewer frames than <paramref name="count"/> repeats frames (each kept in order, repeats spread evenly), so exactly
    /// <paramref name="count"/> indices always come back, non-decreasing. With one index the middle frame is taken.
    /// </summary>
    public static int[] UniformIndices(int totalFrames, int count)
    {
        if (totalFrames <= 0) throw new ArgumentOutOfRangeException(nameof(totalFrames), totalFrames, "a clip needs at least one frame.");
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), count, "at least one frame must be sampled.");
        var idx = new int[count];
        if (count == 1) { idx[0] = (totalFrames - 1) / 2; return idx; }
        long span = totalFrames - 1, den = count - 1;
        for (int i = 0; i < count; i++) idx[i] = (int)((2 * i * span + den) / (2 * den));   // exact integer rounding
        return idx;
    }
}

using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech;

/// <summary>
/// BEST-RQ span masking on 10 ms input frames: every real frame independently starts a span with probability p; a span
/// covers the next <c>span</c> frames (clipped at the utterance end); spans may overlap, so an interior frame is masked
/// with probability 1 − (1 − p)^span.
/// </summary>
public static class SpanMasker
{
    /// <summary>
    /// Mask [B, T] (bool, CPU) for frame counts <paramref name="lengths"/> [B]; drawn from <paramref name="generator"/>
    /// (a CPU generator) so runs are reproducible.
    /// </summary>
    public static Tensor Sample(Tensor lengths, long frames, double startProbability, int span, Generator? generator)
    {
        using var scope = NewDisposeScope();
        var len = lengths.to(ScalarType.Int64, CPU);
        long b = len.shape[0];
        var valid = SequenceMask.Valid(len, frames, CPU);
        using Scalar prob = startProbability.ToScalar(), back = ((long)(1 - span)).ToScalar();
        var starts = torch.rand(new long[] { b, frames }, generator: generator).lt(prob) & valid;
        // frame t is masked when a span starts in [t − span + 1, t]: a windowed count via cumulative sums.
        var c = nn.functional.pad(starts.to(ScalarType.Int32).cumsum(1, ScalarType.Int32), new long[] { 1, 0 }); // [B, T+1], c[t+1] = Σ starts[0..t]
        var upper = c.narrow(1, 1, frames);
        var lowerIdx = Scalars.Arange(0, frames).add_(back, Scalars.One).clamp_min(Scalars.Zero);
        var lower = c.index_select(1, lowerIdx);
        return ((upper - lower).gt(Scalars.Zero) & valid).MoveToOuterDisposeScope();
    }
}

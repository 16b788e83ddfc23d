namespace Llama3.Multimodal.Tests.Shared;

/// <summary>
/// A plain beam search for checking the KV-cached one: every candidate is scored by a full forward of its whole
/// sequence (no cache), and the bookkeeping is written out step by step.
/// </summary>
internal static class ReferenceBeamSearch
{
    /// <summary>
    /// The tokens chosen for one prompt. <paramref name="logProbs"/> maps the generated tokens so far to the next-token
    /// log-probabilities; <paramref name="stops"/> end a candidate (not part of its tokens).
    /// </summary>
    public static List<int> Run(Func<List<int>, float[]> logProbs, int beams, int maxNew, ISet<int> stops, double lengthPenalty = 1.0)
    {
        double Norm(double sum, int len) => lengthPenalty == 0 ? sum : sum / Math.Pow(len, lengthPenalty);
        var live = new List<(List<int> Seq, double Sum)> { (new List<int>(), 0) };
        var done = new List<(List<int> Seq, double Score)>();
        for (int len = 1; len <= maxNew; len++)
        {
            var ranked = live
                .SelectMany(b => Best(logProbs(b.Seq), 2 * beams).Select(t => (b.Seq, Sum: b.Sum + t.LogProb, Token: t.Token)))
                .OrderByDescending(c => c.Sum)
                .Take(2 * beams)
                .ToList();
            var next = new List<(List<int> Seq, double Sum)>();
            for (int rank = 0; rank < ranked.Count; rank++)
            {
                var c = ranked[rank];
                if (stops.Contains(c.Token))
                {
                    if (rank < beams) done.Add((c.Seq, Norm(c.Sum, len)));
                }
                else if (next.Count < beams) next.Add((c.Seq.Append(c.Token).ToList(), c.Sum));
            }
            done = done.OrderByDescending(d => d.Score).Take(beams).ToList();
            if (len == maxNew)
            {
                done.AddRange(next.Select(n => (n.Seq, Norm(n.Sum, len))));
                break;
            }
            if (next.Count == 0 || (done.Count >= beams && done.Min(d => d.Score) >= Norm(next[0].Sum, len))) break;
            live = next;
        }
        return done.OrderByDescending(d => d.Score).First().Seq;
    }

    /// <summary>The <paramref name="k"/> largest log-probabilities with their tokens (the rest cannot be among the best 2W continuations).</summary>
    static IEnumerable<(float LogProb, int Token)> Best(float[] logProbs, int k)
    {
        var idx = Enumerable.Range(0, logProbs.Length).ToArray();
        var keys = logProbs.Select(x => -x).ToArray();
        Array.Sort(keys, idx);
        return idx.Take(k).Select(t => (logProbs[t], t));
    }
}

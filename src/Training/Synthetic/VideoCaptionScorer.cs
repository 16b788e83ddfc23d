namespace Llama3.Multimodal.Training.Synthetic;

/// <summary>Video temporal-caption scoring.</summary>
public static class VideoCaptionScorer
{
    /// <summary>
    /// Temporal-caption accuracy: the fraction of predictions whose parsed event sequence (subjects, verbs,
    /// arguments, in order) equals the reference's. A caption naming the right events in the wrong order scores 0.
    /// </summary>
    public static double Accuracy(IReadOnlyList<string> predictions, IReadOnlyList<string> references)
    {
        CaptionScorer.Check(predictions.Count, references.Count);
        int ok = 0;
        for (int i = 0; i < predictions.Count; i++)
        {
            var r = VideoCaptionGrammar.Parse(references[i]) ?? throw new ArgumentException($"reference {i} \"{references[i]}\" does not follow the video caption grammar.");
            var p = VideoCaptionGrammar.Parse(predictions[i]);
            if (p != null && p.SequenceEqual(r)) ok++;
        }
        return (double)ok / predictions.Count;
    }

    /// <summary>Fraction of predictions that name the reference's events but in the reverse order (a diagnostic of
    /// time-order confusion).</summary>
    public static double ReversedRate(IReadOnlyList<string> predictions, IReadOnlyList<string> references)
    {
        CaptionScorer.Check(predictions.Count, references.Count);
        int n = 0;
        for (int i = 0; i < predictions.Count; i++)
        {
            var r = VideoCaptionGrammar.Parse(references[i]);
            var p = VideoCaptionGrammar.Parse(predictions[i]);
            if (r is null || p is null || r.Count != p.Count || r.Count < 2) continue;
            var rv = r.Select(e => e.Verb + " " + e.Argument).ToList();
            var pv = p.Select(e => e.Verb + " " + e.Argument).Reverse().ToList();
            if (rv.SequenceEqual(pv) && !rv.SequenceEqual(pv.AsEnumerable().Reverse())) n++;
        }
        return (double)n / predictions.Count;
    }
}

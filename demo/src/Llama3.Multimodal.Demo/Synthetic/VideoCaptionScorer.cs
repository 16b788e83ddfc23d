namespace Llama3.Multimodal.Demo;

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

    /// <summary>
    /// Per-part accuracy over two-event captions: <c>colour</c> and <c>shape</c> of the first subject, <c>event1</c> and
    /// <c>event2</c> (verb with its direction or colour), and <c>subject2</c> ("it" or the newcomer "a COLOUR SHAPE").
    /// A prediction that does not parse, or has fewer events, is wrong on every part it lacks.
    /// </summary>
    public static IReadOnlyDictionary<string, (int Correct, int Total, double Accuracy)> PerPart(IReadOnlyList<string> predictions, IReadOnlyList<string> references)
    {
        CaptionScorer.Check(predictions.Count, references.Count);
        string[] names = { "colour", "shape", "event1", "subject2", "event2" };
        var correct = names.ToDictionary(n => n, _ => 0);
        int total = predictions.Count;
        static string?[] Parts(IReadOnlyList<VideoEvent>? e)
        {
            if (e is null || e.Count == 0) return new string?[5];
            var subject = e[0].Subject.Split(' ');
            return new[]
            {
                subject.Length == 3 ? subject[1] : null, subject.Length == 3 ? subject[2] : null, $"{e[0].Verb} {e[0].Argument}",
                e.Count > 1 ? e[1].Subject : null, e.Count > 1 ? $"{e[1].Verb} {e[1].Argument}" : null,
            };
        }
        for (int i = 0; i < predictions.Count; i++)
        {
            var r = VideoCaptionGrammar.Parse(references[i]) ?? throw new ArgumentException($"reference {i} \"{references[i]}\" does not follow the video caption grammar.");
            if (r.Count != 2) throw new ArgumentException($"reference {i} \"{references[i]}\" has {r.Count} events; per-part scores need two.");
            var (rp, pp) = (Parts(r), Parts(VideoCaptionGrammar.Parse(predictions[i])));
            for (int k = 0; k < names.Length; k++) if (pp[k] is not null && pp[k] == rp[k]) correct[names[k]]++;
        }
        return names.ToDictionary(n => n, n => (correct[n], total, (double)correct[n] / total));
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

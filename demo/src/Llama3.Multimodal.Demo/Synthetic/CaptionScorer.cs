using System.Text.RegularExpressions;

namespace Llama3.Multimodal.Demo;

/// <summary>Image caption scoring: exact match after light normalisation, and per-attribute accuracy through
/// <see cref="ImageCaptionGrammar.Parse"/>.</summary>
public static class CaptionScorer
{
    /// <summary>Trims, collapses white space, drops a final period/!/?, lower-cases everything except the printed
    /// word of "the word CAT" (its case is the answer).</summary>
    public static string Normalize(string caption)
    {
        string c = Regex.Replace(caption.Trim(), @"\s+", " ").TrimEnd('.', '!', '?').TrimEnd();
        var w = Regex.Match(c, @"^the word (\S+)$", RegexOptions.IgnoreCase);
        return w.Success ? "the word " + w.Groups[1].Value.ToUpperInvariant() : c.ToLowerInvariant();
    }

    /// <summary>Fraction of predictions equal to their reference after <see cref="Normalize"/>.</summary>
    public static double ExactMatch(IReadOnlyList<string> predictions, IReadOnlyList<string> references)
    {
        Check(predictions.Count, references.Count);
        int ok = 0;
        for (int i = 0; i < predictions.Count; i++) if (Normalize(predictions[i]) == Normalize(references[i])) ok++;
        return (double)ok / predictions.Count;
    }

    /// <summary>
    /// Accuracy per captioned attribute (shape, colour, size, position, count, shape2, colour2, text): for every
    /// reference that has the attribute, whether the attribute parsed from the prediction equals it.
    /// Returns name → (correct, total, accuracy).
    /// </summary>
    public static IReadOnlyDictionary<string, (int Correct, int Total, double Accuracy)> PerAttribute(
        IReadOnlyList<string> predictions, IReadOnlyList<ImageAttributes> references)
    {
        Check(predictions.Count, references.Count);
        return Tally(Enumerable.Range(0, predictions.Count).SelectMany(i =>
        {
            var p = ImageCaptionGrammar.Parse(predictions[i]);
            return references[i].Captioned().Select(a => (a.Name, p.Get(a.Name) == a.Value));
        }));
    }

    /// <summary>
    /// Exact match per scene kind of the reference (single, count, overlap, word, number; through
    /// <see cref="ImageCaptionGrammar.Parse"/>): where a model fails (printed numbers, the second object of an overlap)
    /// rather than how often. Returns kind → (correct, total, accuracy).
    /// </summary>
    public static IReadOnlyDictionary<string, (int Correct, int Total, double Accuracy)> PerKind(
        IReadOnlyList<string> predictions, IReadOnlyList<string> references)
    {
        Check(predictions.Count, references.Count);
        return Tally(Enumerable.Range(0, predictions.Count).Select(i =>
            (ImageCaptionGrammar.Parse(references[i]).Kind, Normalize(predictions[i]) == Normalize(references[i]))));
    }

    /// <summary>(key, right?) outcomes → key → (correct, total, accuracy), keys in ordinal order.</summary>
    static IReadOnlyDictionary<string, (int Correct, int Total, double Accuracy)> Tally(IEnumerable<(string Key, bool Right)> outcomes)
    {
        var counts = new SortedDictionary<string, (int Correct, int Total)>(StringComparer.Ordinal);
        foreach (var (key, right) in outcomes)
        {
            var (c, t) = counts.GetValueOrDefault(key);
            counts[key] = (c + (right ? 1 : 0), t + 1);
        }
        return counts.ToDictionary(kv => kv.Key, kv => (kv.Value.Correct, kv.Value.Total, (double)kv.Value.Correct / kv.Value.Total));
    }

    internal static void Check(int p, int r)
    {
        if (p != r) throw new ArgumentException($"{p} predictions but {r} references.");
        if (p == 0) throw new ArgumentException("nothing to score.");
    }
}

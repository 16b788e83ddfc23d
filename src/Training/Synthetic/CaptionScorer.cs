using System.Text.RegularExpressions;

namespace Llama3.Multimodal.Training.Synthetic;

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
        var correct = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var total = new SortedDictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < predictions.Count; i++)
        {
            var p = ImageCaptionGrammar.Parse(predictions[i]);
            foreach (var (name, value) in references[i].Captioned())
            {
                total[name] = total.GetValueOrDefault(name) + 1;
                if (p.Get(name) == value) correct[name] = correct.GetValueOrDefault(name) + 1;
            }
        }
        return total.ToDictionary(kv => kv.Key, kv => (correct.GetValueOrDefault(kv.Key), kv.Value, (double)correct.GetValueOrDefault(kv.Key) / kv.Value));
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
        var correct = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var total = new SortedDictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < predictions.Count; i++)
        {
            string kind = ImageCaptionGrammar.Parse(references[i]).Kind;
            total[kind] = total.GetValueOrDefault(kind) + 1;
            if (Normalize(predictions[i]) == Normalize(references[i])) correct[kind] = correct.GetValueOrDefault(kind) + 1;
        }
        return total.ToDictionary(kv => kv.Key, kv => (correct.GetValueOrDefault(kv.Key), kv.Value, (double)correct.GetValueOrDefault(kv.Key) / kv.Value));
    }

    internal static void Check(int p, int r)
    {
        if (p != r) throw new ArgumentException($"{p} predictions but {r} references.");
        if (p == 0) throw new ArgumentException("nothing to score.");
    }
}

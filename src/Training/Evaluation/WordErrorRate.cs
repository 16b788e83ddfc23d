namespace Llama3.Multimodal.Training;

/// <summary>Word error rate: word-level Levenshtein distance (substitutions + insertions + deletions, each cost 1)
/// after <see cref="EnglishNormalizer"/>, summed over a set and divided by the total number of reference words.</summary>
public static class WordErrorRate
{
    /// <summary>Edit distance between two word sequences.</summary>
    public static int Distance(IReadOnlyList<string> reference, IReadOnlyList<string> hypothesis)
    {
        var prev = new int[hypothesis.Count + 1];
        var cur = new int[hypothesis.Count + 1];
        for (int j = 0; j <= hypothesis.Count; j++) prev[j] = j;
        for (int i = 1; i <= reference.Count; i++)
        {
            cur[0] = i;
            for (int j = 1; j <= hypothesis.Count; j++)
            {
                int sub = prev[j - 1] + (reference[i - 1] == hypothesis[j - 1] ? 0 : 1);
                cur[j] = Math.Min(sub, Math.Min(prev[j] + 1, cur[j - 1] + 1));
            }
            (prev, cur) = (cur, prev);
        }
        return prev[hypothesis.Count];
    }

    static string[] Words(string s) => EnglishNormalizer.Normalize(s).Split(' ', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>WER of one pair (edits / reference words; a hypothesis for an empty reference counts its words as errors over 1).</summary>
    public static double Compute(string reference, string hypothesis) => Compute(new[] { reference }, new[] { hypothesis });

    /// <summary>Corpus WER: total edits / total reference words.</summary>
    public static double Compute(IReadOnlyList<string> references, IReadOnlyList<string> hypotheses)
    {
        if (hypotheses.Count != references.Count) throw new ArgumentException($"{hypotheses.Count} hypotheses but {references.Count} references.");
        if (references.Count == 0) throw new ArgumentException("nothing to score.");
        long edits = 0, words = 0;
        for (int i = 0; i < references.Count; i++)
        {
            var r = Words(references[i]);
            edits += Distance(r, Words(hypotheses[i]));
            words += r.Length;
        }
        return (double)edits / Math.Max(1, words);
    }
}

using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Llama3.Multimodal.Training;

/// <summary>
/// The transcript normaliser applied before WER: lower-case; numbers 0…999 written as words ("42" → "forty two");
/// hyphens become spaces; apostrophes are removed ("it's" → "its"); every other character that is not a letter,
/// digit or white space is removed; white space collapses to single spaces.
/// </summary>
public static class EnglishNormalizer
{
    /// <summary>Normalises one transcript.</summary>
    public static string Normalize(string text)
    {
        string t = text.ToLowerInvariant().Replace('-', ' ').Replace("'", "").Replace("\u2019", "");
        t = Regex.Replace(t, @"\d+", m => int.TryParse(m.Value, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n <= 999
            ? " " + NumberWords.ToWords(n) + " " : " " + string.Join(" ", m.Value.Select(c => NumberWords.ToWords(c - '0'))) + " ");
        var sb = new StringBuilder(t.Length);
        foreach (char c in t) sb.Append(char.IsLetterOrDigit(c) || char.IsWhiteSpace(c) ? c : ' ');
        return Regex.Replace(sb.ToString(), @"\s+", " ").Trim();
    }
}

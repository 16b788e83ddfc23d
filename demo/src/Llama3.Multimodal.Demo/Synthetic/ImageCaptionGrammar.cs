using System.Text.RegularExpressions;

namespace Llama3.Multimodal.Demo;

/// <summary>The image caption grammar (GRAMMAR.md): attributes → caption, and a lenient caption → attributes parser
/// used to score a model's captions attribute by attribute.</summary>
public static class ImageCaptionGrammar
{
    /// <summary>The caption of a scene's attributes.</summary>
    public static string Caption(ImageAttributes a) => a.Kind switch
    {
        "single" => $"a {a.Size} {a.Colour} {a.Shape} {ShapeScenes.PositionPhrase(a.Position!)}",
        "count" => $"{a.Count} {a.Size} {a.Colour} {ShapeScenes.Plural(a.Shape!)}",
        "overlap" => $"a {a.Colour} {a.Shape} in front of a {a.Colour2} {a.Shape2}",
        "word" => $"the word {a.Text}",
        "number" => $"the number {a.Text}",
        _ => throw new SyntheticDataException($"unknown image scene kind \"{a.Kind}\"."),
    };

    /// <summary>
    /// Reads attributes back from any caption (a model's output included): words are matched against the grammar's
    /// vocabulary in order, so a partly wrong caption still earns credit for the attributes it gets right.
    /// </summary>
    public static ImageAttributes Parse(string caption)
    {
        string c = Regex.Replace(caption.Trim().TrimEnd('.', '!', '?'), @"\s+", " ");
        var w = Regex.Match(c, @"^the word ([A-Za-z]+)$", RegexOptions.IgnoreCase);
        if (w.Success) return new ImageAttributes("word", Text: w.Groups[1].Value.ToUpperInvariant());
        var n = Regex.Match(c, @"^the number (\d+)$", RegexOptions.IgnoreCase);
        if (n.Success) return new ImageAttributes("number", Text: n.Groups[1].Value);

        var tokens = c.ToLowerInvariant().Split(' ');
        var colours = new List<string>();
        var shapes = new List<string>();
        string? size = null, position = null, count = null;
        for (int i = 0; i < tokens.Length; i++)
        {
            string t = tokens[i];
            if (ShapeScenes.Colours.Contains(t)) colours.Add(t);
            else if (ShapeScenes.Sizes.Contains(t)) size ??= t;
            else if (ShapeScenes.Shapes.Contains(t)) shapes.Add(t);
            else if (ShapeScenes.Shapes.FirstOrDefault(s => ShapeScenes.Plural(s) == t) is { } sp) shapes.Add(sp);
            else if (i == 0 && t is "two" or "three" && count == null) count = t;
            else if (i == 0 && t is "a" or "one") count = "one";
            else if (t is "left" or "right" or "top" or "bottom" or "centre") position ??= t;
        }
        bool overlap = c.Contains(" in front of ", StringComparison.OrdinalIgnoreCase);
        if (overlap)
            return new ImageAttributes("overlap", Shape: shapes.ElementAtOrDefault(0), Colour: colours.ElementAtOrDefault(0),
                Shape2: shapes.ElementAtOrDefault(1), Colour2: colours.ElementAtOrDefault(1));
        string kind = position != null || count is null or "one" ? "single" : "count";
        return new ImageAttributes(kind, shapes.FirstOrDefault(), colours.FirstOrDefault(), size, position, count);
    }
}

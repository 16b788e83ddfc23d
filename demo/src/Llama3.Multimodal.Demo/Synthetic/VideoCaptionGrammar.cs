using System.Text.RegularExpressions;

namespace Llama3.Multimodal.Demo;

/// <summary>The video caption grammar (GRAMMAR.md): two events joined by "then", in time order, e.g.
/// "a red circle moves left then a blue square appears" or "a green star turns yellow then it moves up".</summary>
public static class VideoCaptionGrammar
{
    /// <summary>Directions a shape can move in.</summary>
    public static readonly IReadOnlyList<string> Directions = new[] { "left", "right", "up", "down" };

    static readonly Regex Clause = new(@"^(it|a [a-z]+ [a-z]+) (moves|turns|appears|disappears)(?: ([a-z]+))?$", RegexOptions.CultureInvariant);

    /// <summary>The caption of an event sequence.</summary>
    public static string Caption(IReadOnlyList<VideoEvent> events) => string.Join(" then ", events.Select(e => e.ToString()));

    /// <summary>Parses a caption into its events (after <see cref="CaptionScorer.Normalize"/>), or null if it does not
    /// follow the grammar.</summary>
    public static IReadOnlyList<VideoEvent>? Parse(string caption)
    {
        var parts = CaptionScorer.Normalize(caption).Split(" then ");
        var list = new List<VideoEvent>();
        foreach (var p in parts)
        {
            var m = Clause.Match(p);
            if (!m.Success) return null;
            string verb = m.Groups[2].Value;
            string? arg = m.Groups[3].Success ? m.Groups[3].Value : null;
            if ((verb is "moves" or "turns") != (arg != null)) return null;
            list.Add(new VideoEvent(m.Groups[1].Value, verb, arg));
        }
        return list;
    }
}

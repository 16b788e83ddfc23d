using System.Globalization;
using System.Text.RegularExpressions;

namespace Llama3.Multimodal.Demo;

/// <summary>One question about a scene with its reference answer and its question type.</summary>
/// <param name="Type">Question type (<see cref="DialogueGrammar.Types"/>).</param>
/// <param name="Question">The user's question.</param>
/// <param name="Answer">The reference answer, a short plain sentence derived from the scene.</param>
public sealed record SceneQuestion(string Type, string Question, string Answer);

/// <summary>
/// The dialogue grammar of the demo's instruction data (GRAMMAR.md, "Dialogues"): the questions a scene's attributes
/// answer, each with one short plain-sentence answer derived from the scene, a wrong answer of the same form (for
/// preference data), and the text-only forms that teach a text decoder the same answers ("An image shows CAPTION. …",
/// "Repeat after me: …").
/// </summary>
public static class DialogueGrammar
{
    /// <summary>Question types, in report order.</summary>
    public static IReadOnlyList<string> Types { get; } = new[] { "describe", "colour", "count", "position", "text", "front" };

    /// <summary>The two phrasings of the describe question.</summary>
    public static IReadOnlyList<string> DescribeQuestions { get; } = new[] { "Describe the image.", "What is in this picture?" };

    /// <summary>The user prompt of the text-only repeat dialogues.</summary>
    public const string RepeatPrefix = "Repeat after me: ";

    /// <summary>
    /// Every question the scene answers, in type order: describe (phrasing picked by <paramref name="rng"/>), then colour,
    /// count, position (shape scenes), text (print) and front (overlap scenes). An overlap of two shapes of one kind
    /// gets no colour question ("the circle" would not say which).
    /// </summary>
    public static List<SceneQuestion> Questions(ImageAttributes a, Random rng)
    {
        var q = new List<SceneQuestion> { new("describe", DescribeQuestions[rng.Next(DescribeQuestions.Count)], ImageCaptionGrammar.Caption(a)) };
        switch (a.Kind)
        {
            case "single":
                q.Add(new("colour", $"What colour is the {a.Shape}?", $"it is {a.Colour}"));
                q.Add(new("count", "How many shapes are there?", CountAnswer("one")));
                q.Add(new("position", $"Where is the {a.Shape}?", $"it is {ShapeScenes.PositionPhrase(a.Position!)}"));
                break;
            case "count":
                q.Add(new("colour", $"What colour are the {ShapeScenes.Plural(a.Shape!)}?", $"they are {a.Colour}"));
                q.Add(new("count", "How many shapes are there?", CountAnswer(a.Count!)));
                break;
            case "overlap":
                if (a.Shape != a.Shape2)
                {
                    bool front = rng.Next(2) == 0;
                    q.Add(new("colour", $"What colour is the {(front ? a.Shape : a.Shape2)}?", $"it is {(front ? a.Colour : a.Colour2)}"));
                }
                q.Add(new("count", "How many shapes are there?", CountAnswer("two")));
                q.Add(new("front", "What shape is in front?", FrontAnswer(a.Colour!, a.Shape!)));
                break;
            case "word":
                q.Add(new("text", "What does the text say?", $"it says {a.Text}"));
                break;
            case "number":
                q.Add(new("text", "What number is shown?", $"it is {a.Text}"));
                break;
            default:
                throw new SyntheticDataException($"unknown image scene kind \"{a.Kind}\".");
        }
        return q;
    }

    static string CountAnswer(string count) => count == "one" ? "there is one" : $"there are {count}";

    static string FrontAnswer(string colour, string shape) => $"the {colour} {shape} is in front";

    /// <summary>
    /// A wrong answer of the same form as <paramref name="q"/>'s (another colour, count, position, word or number; the
    /// other shape in front; for describe, the caption of a changed scene), for the rejected side of preference data.
    /// </summary>
    public static string WrongAnswer(ImageAttributes a, SceneQuestion q, Random rng)
    {
        T Other<T>(IReadOnlyList<T> list, T right) where T : notnull
        {
            var rest = list.Where(x => !x.Equals(right)).ToList();
            return rest[rng.Next(rest.Count)];
        }
        switch (q.Type)
        {
            case "colour":
            {
                string right = q.Answer.Split(' ')[^1];
                return q.Answer[..^right.Length] + Other(ShapeScenes.Colours, right);
            }
            case "count":
            {
                string right = a.Kind == "overlap" ? "two" : a.Count!;
                return CountAnswer(Other(ShapeScenes.Counts, right));
            }
            case "position": return $"it is {ShapeScenes.PositionPhrase(Other(ShapeScenes.Positions, a.Position!))}";
            case "text":
                return a.Kind == "word" ? $"it says {Other(ShapeScenes.Words, a.Text!)}"
                    : $"it is {Other(Enumerable.Range(0, 100).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToList(), a.Text!)}";
            case "front": return FrontAnswer(a.Colour2!, a.Shape2!);
            case "describe":
                return ImageCaptionGrammar.Caption(a.Kind switch
                {
                    "single" => a with { Colour = Other(ShapeScenes.Colours, a.Colour!) },
                    "count" => a with { Count = Other(ShapeScenes.Counts.Skip(1).ToList(), a.Count!) },
                    "overlap" => a with { Shape = a.Shape2, Colour = a.Colour2, Shape2 = a.Shape, Colour2 = a.Colour },
                    "word" => a with { Text = Other(ShapeScenes.Words, a.Text!) },
                    _ => a with { Text = Other(Enumerable.Range(0, 100).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToList(), a.Text!) },
                });
            default: throw new SyntheticDataException($"unknown question type \"{q.Type}\".");
        }
    }

    /// <summary>The text-only form of a question: the scene described in words first ("An image shows CAPTION. QUESTION").</summary>
    public static string Described(ImageAttributes a, SceneQuestion q) => $"An image shows {ImageCaptionGrammar.Caption(a)}. {q.Question}";

    /// <summary>
    /// Answers compared as the caption scorer compares captions: trimmed, spaces collapsed, a final <c>.</c>/<c>!</c>/<c>?</c>
    /// dropped, lower case except the printed word of a text answer.
    /// </summary>
    public static string Normalize(string answer)
    {
        string s = Regex.Replace(answer.Trim().TrimEnd('.', '!', '?'), @"\s+", " ");
        return s.ToLowerInvariant();
    }

    /// <summary>Whether <paramref name="prediction"/> is <paramref name="reference"/> after <see cref="Normalize"/>, the printed word's case kept.</summary>
    public static bool Matches(string prediction, string reference)
    {
        string p = Regex.Replace(prediction.Trim().TrimEnd('.', '!', '?'), @"\s+", " "), r = Regex.Replace(reference.Trim().TrimEnd('.', '!', '?'), @"\s+", " ");
        if (r.StartsWith("it says ", StringComparison.Ordinal) || r.StartsWith("the word ", StringComparison.Ordinal))
            return string.Equals(p, r, StringComparison.Ordinal) || (string.Equals(Normalize(p), Normalize(r), StringComparison.Ordinal) && p.Split(' ')[^1] == r.Split(' ')[^1]);
        return string.Equals(Normalize(p), Normalize(r), StringComparison.Ordinal);
    }
}

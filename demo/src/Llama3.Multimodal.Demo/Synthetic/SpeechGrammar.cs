namespace Llama3.Multimodal.Demo;

/// <summary>The speech sentence grammar (GRAMMAR.md): lower-case sentences without punctuation, numbers as words,
/// so a transcript is already in the WER normaliser's form.</summary>
public static class SpeechGrammar
{
    static readonly string[] Verbs = { "paint", "find", "draw", "hide", "move" };
    static readonly string[] Directions = { "left", "right", "up", "down" };

    /// <summary>One sentence drawn with <paramref name="rng"/>.</summary>
    public static string Sentence(Random rng)
    {
        T P<T>(IReadOnlyList<T> l) => l[rng.Next(l.Count)];
        string colour = P(ShapeScenes.Colours), shape = P(ShapeScenes.Shapes);
        switch (rng.Next(7))
        {
            case 0: return $"the {colour} {shape} is {ShapeScenes.PositionPhrase(P(ShapeScenes.Positions))}";
            case 1:
            {
                int n = rng.Next(1, 4);
                return n == 1 ? $"i see a {colour} {shape}" : $"i see {ShapeScenes.Counts[n - 1]} {colour} {ShapeScenes.Plural(shape)}";
            }
            case 2: return $"please {P(Verbs)} the {P(ShapeScenes.Sizes)} {colour} {shape}";
            case 3: return $"the number is {NumberWords.ToWords(rng.Next(0, 100))}";
            case 4: return $"the word is {P(ShapeScenes.Words).ToLowerInvariant()}";
            case 5: return $"the {shape} moves {P(Directions)} then it turns {P(ShapeScenes.Colours)}";
            default: return $"{P(ShapeScenes.Sizes)} {colour} {ShapeScenes.Plural(shape)} and {P(ShapeScenes.Colours)} {ShapeScenes.Plural(P(ShapeScenes.Shapes))}";
        }
    }
}

using SkiaSharp;

namespace Llama3.Multimodal.Demo;

/// <summary>The closed vocabulary shared by the image, video, speech and text grammars (see GRAMMAR.md).</summary>
public static class ShapeScenes
{
    /// <summary>Shape names, singular.</summary>
    public static readonly IReadOnlyList<string> Shapes = new[] { "circle", "square", "triangle", "star", "diamond", "cross" };

    /// <summary>Shape colour names.</summary>
    public static readonly IReadOnlyList<string> Colours = new[] { "red", "green", "blue", "yellow", "purple", "orange" };

    /// <summary>Size names.</summary>
    public static readonly IReadOnlyList<string> Sizes = new[] { "small", "large" };

    /// <summary>Position names (captioned as "on the left", "on the right", "at the top", "at the bottom", "in the centre").</summary>
    public static readonly IReadOnlyList<string> Positions = new[] { "left", "right", "top", "bottom", "centre" };

    /// <summary>Count words for 1, 2, 3.</summary>
    public static readonly IReadOnlyList<string> Counts = new[] { "one", "two", "three" };

    /// <summary>Background names (not captioned: a nuisance variable).</summary>
    public static readonly IReadOnlyList<string> Backgrounds = new[] { "white", "black", "grey" };

    /// <summary>Printed words (upper case, drawn with a built-in stroke font so no system font is needed).</summary>
    public static readonly IReadOnlyList<string> Words = new[]
    {
        "CAT", "DOG", "SUN", "BOX", "HAT", "CUP", "PEN", "BUS", "FOX", "OWL", "KEY", "MAP",
        "FISH", "BIRD", "STAR", "MOON", "TREE", "SHIP", "FROG", "LAMP", "DOOR", "JUMP", "QUIZ", "WAVE",
    };

    /// <summary>Whether scenes of <paramref name="kind"/> show printed text (word, number), so have no colour+shape pair.</summary>
    public static bool IsPrintKind(string kind) => kind is "word" or "number";

    /// <summary>The sRGB value of a shape colour name.</summary>
    public static SKColor Colour(string name) => name switch
    {
        "red" => new SKColor(220, 30, 30),
        "green" => new SKColor(30, 170, 40),
        "blue" => new SKColor(30, 60, 220),
        "yellow" => new SKColor(240, 210, 20),
        "purple" => new SKColor(140, 40, 180),
        "orange" => new SKColor(250, 130, 0),
        _ => throw new SyntheticDataException($"unknown colour \"{name}\" (known: {string.Join(", ", Colours)})."),
    };

    /// <summary>The sRGB value of a background name.</summary>
    public static SKColor Background(string name) => name switch
    {
        "white" => new SKColor(255, 255, 255),
        "black" => new SKColor(0, 0, 0),
        "grey" => new SKColor(128, 128, 128),
        _ => throw new SyntheticDataException($"unknown background \"{name}\" (known: {string.Join(", ", Backgrounds)})."),
    };

    /// <summary>Plural of a shape name ("cross" → "crosses").</summary>
    public static string Plural(string shape) => shape.EndsWith("s", StringComparison.Ordinal) ? shape + "es" : shape + "s";

    /// <summary>The caption phrase of a position ("left" → "on the left").</summary>
    public static string PositionPhrase(string position) => position switch
    {
        "left" => "on the left",
        "right" => "on the right",
        "top" => "at the top",
        "bottom" => "at the bottom",
        "centre" => "in the centre",
        _ => throw new SyntheticDataException($"unknown position \"{position}\"."),
    };
}

namespace Llama3.Multimodal.Demo;

/// <summary>
/// Structured attributes of an image caption, for per-attribute scoring. Fields that a scene kind does not describe
/// are null. Kinds: <c>single</c> ("a large red circle on the left"), <c>count</c> ("two small blue squares"),
/// <c>overlap</c> ("a red circle in front of a blue square"), <c>word</c> ("the word CAT"), <c>number</c> ("the number 42").
/// </summary>
/// <param name="Kind">Scene kind.</param>
/// <param name="Shape">Shape (the front shape for overlap scenes).</param>
/// <param name="Colour">Colour (the front shape's for overlap scenes).</param>
/// <param name="Size">Size word (single/count scenes; for word/number scenes the letter size, not captioned).</param>
/// <param name="Position">Position name (single scenes).</param>
/// <param name="Count">Count word: one, two, three (shape scenes).</param>
/// <param name="Shape2">Back shape (overlap scenes).</param>
/// <param name="Colour2">Back shape's colour (overlap scenes).</param>
/// <param name="Text">Printed word or number (word/number scenes).</param>
public sealed record ImageAttributes(
    string Kind, string? Shape = null, string? Colour = null, string? Size = null, string? Position = null,
    string? Count = null, string? Shape2 = null, string? Colour2 = null, string? Text = null)
{
    /// <summary>The captioned attributes as (name, value) pairs, nulls left out; the names match the labels manifest keys.</summary>
    public IEnumerable<(string Name, string Value)> Captioned()
    {
        if (Shape != null) yield return ("shape", Shape);
        if (Colour != null) yield return ("colour", Colour);
        if (Size != null && Kind is "single" or "count") yield return ("size", Size);
        if (Position != null) yield return ("position", Position);
        if (Count != null) yield return ("count", Count);
        if (Shape2 != null) yield return ("shape2", Shape2);
        if (Colour2 != null) yield return ("colour2", Colour2);
        if (Text != null) yield return ("text", Text);
    }

    /// <summary>The value of a captioned attribute by its labels key, or null.</summary>
    public string? Get(string name) => name switch
    {
        "shape" => Shape, "colour" => Colour, "size" => Kind is "single" or "count" ? Size : null, "position" => Position,
        "count" => Count, "shape2" => Shape2, "colour2" => Colour2, "text" => Text, "kind" => Kind, _ => null,
    };
}

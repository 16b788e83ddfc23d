namespace Llama3.Multimodal.Demo;

/// <summary>A colour+shape combination, e.g. ("green", "triangle"), used to hold combinations out of training.</summary>
/// <param name="Colour">Colour name from <see cref="ShapeScenes.Colours"/>.</param>
/// <param name="Shape">Shape name from <see cref="ShapeScenes.Shapes"/>.</param>
public sealed record ColourShape(string Colour, string Shape)
{
    /// <summary>Parses <c>"green triangle"</c> or <c>"green-triangle"</c>; throws naming the bad part.</summary>
    public static ColourShape Parse(string text)
    {
        var parts = text.Split(new[] { ' ', '-', '_' }, StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length != 2) throw new SyntheticDataException($"held-out combination \"{text}\": expected \"<colour> <shape>\".");
        if (!ShapeScenes.Colours.Contains(parts[0])) throw new SyntheticDataException($"held-out combination \"{text}\": unknown colour \"{parts[0]}\" (known: {string.Join(", ", ShapeScenes.Colours)}).");
        if (!ShapeScenes.Shapes.Contains(parts[1])) throw new SyntheticDataException($"held-out combination \"{text}\": unknown shape \"{parts[1]}\" (known: {string.Join(", ", ShapeScenes.Shapes)}).");
        return new ColourShape(parts[0], parts[1]);
    }

    /// <inheritdoc/>
    public override string ToString() => Colour + " " + Shape;
}

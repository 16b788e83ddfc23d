namespace Llama3.Multimodal.Demo;

/// <summary>One event of a video caption: a subject ("a red circle" or "it") and what it does
/// (<c>moves</c> with a direction, <c>turns</c> with a colour, <c>appears</c>, <c>disappears</c>).</summary>
/// <param name="Subject">"a {colour} {shape}" or "it".</param>
/// <param name="Verb">moves, turns, appears or disappears.</param>
/// <param name="Argument">Direction (left, right, up, down) for moves, colour for turns, else null.</param>
public sealed record VideoEvent(string Subject, string Verb, string? Argument)
{
    /// <summary>The clause text, e.g. "a red circle moves left".</summary>
    public override string ToString() => Argument is null ? $"{Subject} {Verb}" : $"{Subject} {Verb} {Argument}";
}

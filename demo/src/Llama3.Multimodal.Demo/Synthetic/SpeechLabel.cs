namespace Llama3.Multimodal.Demo;

/// <summary>One record of a speech set's <c>labels.jsonl</c>.</summary>
/// <param name="Audio">Absolute WAV path.</param>
/// <param name="Text">Transcript.</param>
/// <param name="Voice">espeak-ng voice (base + variant).</param>
/// <param name="Speed">Words per minute.</param>
/// <param name="Pitch">espeak-ng pitch 0…99.</param>
public sealed record SpeechLabel(string Audio, string Text, string Voice, int Speed, int Pitch);

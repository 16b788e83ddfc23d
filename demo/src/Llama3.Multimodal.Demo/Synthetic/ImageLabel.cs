namespace Llama3.Multimodal.Demo;

/// <summary>One record of an image set's <c>labels.jsonl</c>.</summary>
/// <param name="Image">Absolute image path.</param>
/// <param name="Caption">Reference caption.</param>
/// <param name="Attributes">Structured attributes (per-attribute scoring).</param>
/// <param name="Background">Background name.</param>
public sealed record ImageLabel(string Image, string Caption, ImageAttributes Attributes, string Background);

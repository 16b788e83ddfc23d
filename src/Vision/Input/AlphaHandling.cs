namespace Llama3.Multimodal.Vision;

/// <summary>How a decoded image with transparency (or a palette) becomes RGB.</summary>
public enum AlphaHandling
{
    /// <summary>Meta's reference: PIL <c>convert("RGB")</c>, the colour channels are kept and alpha is dropped (default).</summary>
    Drop,
    /// <summary>Hugging Face's image processor: alpha-composite over a white background.</summary>
    CompositeOnWhite,
}

namespace Llama3.Multimodal.Vision;

/// <summary>Parts of a <see cref="VisionLanguageModel"/> that recipes train or freeze separately.</summary>
public enum VisionComponent
{
    /// <summary>The text decoder: embeddings, self-attention layers, final norm, output head.</summary>
    Text,
    /// <summary>The image encoder (<c>vision_model.*</c>).</summary>
    VisionEncoder,
    /// <summary>The image adapters: cross-attention blocks and <c>multi_modal_projector</c>.</summary>
    Adapters,
}

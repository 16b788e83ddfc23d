namespace Llama3.Multimodal.Training;

/// <summary>
/// Settings of the image recipes (<c>vision-stage1</c>, <c>vision-stage2</c>): the <c>vision</c> section of their configs,
/// e.g. <c>vision.preset</c>, <c>vision.max_tiles</c>.
/// </summary>
public sealed record VisionSection
{
    /// <summary>Vision preset a fresh model is built from (e.g. <c>tiny-vision</c>, <c>llama3.2-11b-vision</c>); null = the
    /// recipe's default. <c>model.*</c> overrides still apply to the text decoder.</summary>
    public string? Preset { get; init; }
    /// <summary>Images are fitted to at most this many tiles (1 = one tile per image; 4 = up to 2 × 2 tiles, the
    /// higher-resolution stage 2).</summary>
    public int MaxTiles { get; init; } = 4;
    /// <summary>How many gated cross-attention layers are added when the vision model is built around a text-only checkpoint
    /// (null = the preset's count, capped at the text layers). The layers' positions follow
    /// <c>VisionLanguageConfig.FusionSchedule</c> and are written to the model's <c>cross_attention_layers</c> list.</summary>
    public int? NumCrossAttentionLayers { get; init; }
    /// <summary>A text model folder whose weights replace the language model of the starting image model (Llama 3 §7.5:
    /// the pre-trained language model is hot-swapped for the instruction-tuned one): e.g. the <c>sft</c> recipe's output
    /// for <c>vision-sft</c>, or the <c>reward-model</c> recipe's output for <c>vision-reward</c> (its scalar head comes
    /// along). The embedding rows of the text vocabulary, the self-attention layers, the final norm and the head are copied;
    /// the shapes, vocabulary and layer count must match the image model's (the error names the setting or tensor that
    /// differs). The swapped weights stay frozen unless <c>train.trainable</c> names <c>language_model</c>. Null (the
    /// default) = keep the starting model's language model.</summary>
    public string? LanguageModelFrom { get; init; }
    /// <summary>Weight of the anchor loss: for every training record whose manifest line sets <c>"anchor": true</c>, the
    /// squared distance between its image's cross-attention source and that of a frozen reference model, relative to the
    /// reference's squared norm, Σ(s − s₀)² / Σs₀², summed into the caption loss with this weight (training batches only).
    /// It lets a round teach the encoder something new while the anchored images' source stays where it was. Not part of
    /// Llama 3's recipe: 0 (the default) = off; needs <c>model.init_from</c> (or <see cref="AnchorFrom"/>) to name a vision
    /// model.</summary>
    public double AnchorLossWeight { get; init; }
    /// <summary>The vision model folder the anchor loss compares with, when it is not the starting model
    /// (<c>model.init_from</c>). Its cross-attention source must have the run's shape (tile size, patch size, tile count,
    /// decoder width). Null (the default) = <c>model.init_from</c>; only with <see cref="AnchorLossWeight"/> &gt; 0.</summary>
    public string? AnchorFrom { get; init; }
    /// <summary>Auxiliary losses by registered name (<see cref="AuxiliaryLossRegistry"/>) and weight, each summed into the
    /// caption loss on training batches; empty (the default) = none. The library registers none; an application registers
    /// its own (the demo's <c>mm-demo</c> registers <c>glyph</c>, <c>glyph_linear</c> and <c>shape</c>).</summary>
    public IReadOnlyList<AuxiliaryLossSpec> AuxiliaryLosses { get; init; } = Array.Empty<AuxiliaryLossSpec>();
}

/// <summary>One entry of <see cref="VisionSection.AuxiliaryLosses"/>: a registered loss name and its weight.</summary>
/// <param name="Name">Name the loss was registered under (<see cref="AuxiliaryLossRegistry.Register"/>).</param>
/// <param name="Weight">Weight of its summed value in the training loss (finite, ≥ 0).</param>
public sealed record AuxiliaryLossSpec(string Name, double Weight);

namespace Llama3.Multimodal.Training;

/// <summary>
/// Settings of the multimodal recipes (<c>vision-stage1/2</c>, <c>video</c>, <c>speech-stage1/2</c>); the text recipes
/// ignore them. Keys: <c>media.preset</c>, <c>media.encoder_from</c>, <c>media.max_tiles</c>, …
/// </summary>
public sealed record MediaSection
{
    /// <summary>Multimodal preset the fresh model is built from (e.g. <c>tiny-vision</c>, <c>tiny-video</c>, <c>tiny-speech</c>,
    /// <c>llama3.2-11b-vision</c>); null = the recipe's default. <c>model.*</c> overrides still apply to the text decoder.</summary>
    public string? Preset { get; init; }
    /// <summary><c>speech-stage2</c>: folder of a <c>speech-stage1</c> checkpoint whose encoder (and feature statistics) start the run.</summary>
    public string? EncoderFrom { get; init; }
    /// <summary>Images are fitted to at most this many tiles (1 = one tile per image; 4 = up to 2 × 2 tiles, the higher-resolution stage 2).</summary>
    public int MaxTiles { get; init; } = 4;
    /// <summary>Image cross-attention layers added when a vision model is built from a text-only checkpoint (null = the preset's count, capped at the text layers).</summary>
    public int? CrossAttentionLayers { get; init; }
    /// <summary><c>video</c>: frames sampled uniformly per clip (Llama 3 paper §7.4: 16 in video pretraining).</summary>
    public int NumFrames { get; init; } = 16;
    /// <summary><c>video</c>: consecutive frames the aggregator merges into one (Llama 3 paper §7.4: 16 → 1 in pretraining).</summary>
    public int FramesPerGroup { get; init; } = 16;
    /// <summary><c>video</c>: how the aggregator merges a group's frames: <c>latents</c> (learned latents attend to all the
    /// group's tokens, open_flamingo's form) or <c>per_position</c> (each token position merged across the frames on its
    /// own, so the aggregated frame keeps the frame's layout); null = the preset's (<c>latents</c>). Only a fresh
    /// aggregator takes it: a video model named by <c>model.init_from</c> keeps its own.</summary>
    public string? AggregatorMerge { get; init; }
    /// <summary><c>video</c>: with <c>per_position</c> merging, add the fixed 2-D code of each token's place in the frame to
    /// the aggregated frame (<c>place_code</c>), so the video cross-attention can tell where each token is; false = off.</summary>
    public bool AggregatorPlaceCode { get; init; }
    /// <summary><c>video</c>: fresh video cross-attention layers start as copies of the image cross-attention layer each
    /// precedes (gates still at zero, so the model starts exactly as the image model); false = random (Flamingo's
    /// start). A video model named by <c>model.init_from</c> keeps its own.</summary>
    public bool VideoFromImageLayers { get; init; }
    /// <summary><c>video</c>: 1-based ordinals of the image cross-attention layers a fresh video cross-attention layer is
    /// put before (e.g. <c>[1, 2]</c>: one before each of the tiny model's two image layers); null = the preset's
    /// (Llama 3 paper §7.2: before every fourth). A video model named by <c>model.init_from</c> keeps its own.</summary>
    public IReadOnlyList<int>? VideoLayersBefore { get; init; }
    /// <summary><c>speech-stage2</c>: language named in the ASR prompt when a record has none.</summary>
    public string Language { get; init; } = "English";
    /// <summary>BEST-RQ: probability that a 10 ms frame starts a masked span (Llama 3 paper §8.3: 0.025).</summary>
    public double MaskProbability { get; init; } = 0.025;
    /// <summary>BEST-RQ: span length in 10 ms frames (Llama 3 paper §8.3: 32).</summary>
    public int MaskSpan { get; init; } = 32;
    /// <summary>BEST-RQ: codebooks (Llama 3 paper §8.3: 16).</summary>
    public int Codebooks { get; init; } = 16;
    /// <summary>BEST-RQ: vectors per codebook (Llama 3 paper §8.3: 8192).</summary>
    public int CodebookSize { get; init; } = 8192;
    /// <summary>BEST-RQ: utterances the per-bin mean/variance are measured on before training (0 = all training utterances).</summary>
    public int StatsUtterances { get; init; }
    /// <summary>Longest utterance in 10 ms frames; longer ones are cropped to a window (Llama 3 paper §8.3: 6000 = 60 s).</summary>
    public int MaxAudioFrames { get; init; } = 6000;
    /// <summary><c>speech-stage2</c>: SpecAugment masking of the training features (the Conformer paper's policy, see
    /// <c>Llama3.Multimodal.Speech.SpecAugment</c>); Llama 3 does not say, so off by default.</summary>
    public bool SpecAugment { get; init; }
    /// <summary><c>speech-stage2</c>: speed perturbation of the training audio: each utterance, at each visit, is played at one
    /// of these rates drawn uniformly (e.g. <c>[0.9, 1.0, 1.1]</c>: resampled as if recorded at rate × 16 kHz, so tempo and
    /// pitch change together, as sox <c>speed</c>); empty = off (Llama 3 does not say).</summary>
    public IReadOnlyList<double> SpeedPerturb { get; init; } = Array.Empty<double>();
    /// <summary><c>video</c>: memory (MiB) for the clips' decoded frames, so that ffmpeg decodes each clip once rather than
    /// once per epoch (about <c>num_frames</c> × 3 × side² bytes per clip; 0 = decode every time).</summary>
    public int FrameCacheMb { get; init; } = 1024;
    /// <summary><c>video</c>: an image-text folder (e.g. a later <c>vision-stage2</c> run) whose base weights (image
    /// encoder, projector, decoder) replace those of the video model named by <c>model.init_from</c>, which keeps its
    /// aggregator and video cross-attention (Llama 3's video SFT: video parameters from video pretraining, image weights
    /// and LLM from their finetuned versions); null = keep the video model's own.</summary>
    public string? VisionFrom { get; init; }
    /// <summary><c>vision-stage1</c>/<c>vision-stage2</c>: weight of an auxiliary glyph loss for rendered print (the word
    /// and number scenes of <c>make-data images</c>): the cross-attention source row of the patch under each glyph's centre,
    /// read through the frozen decoder's final norm and output head, is trained to name that character's token
    /// (cross-entropy, summed into the caption loss with this weight; training batches only, so evaluation loss stays the
    /// caption loss). Not part of Llama 3's recipe: 0 (the default) = off.</summary>
    public double GlyphLossWeight { get; init; }
    /// <summary><c>vision-stage1</c>/<c>vision-stage2</c>: what reads the glyph loss's source rows
    /// (<see cref="GlyphLossWeight"/>): <c>"output"</c> (the default) = the frozen decoder's final norm and output head,
    /// against the character's token; <c>"linear"</c> = a linear head of the run's own, trained with it (not part of the
    /// saved model; kept in checkpoints for resuming), naming the character among
    /// 0–9 and A–Z and its place in the text (first … fourth), two cross-entropy terms.</summary>
    public string GlyphHead { get; init; } = GlyphHeadOutput;
    /// <summary><c>vision-stage1</c>/<c>vision-stage2</c>: weight of an auxiliary patch-shape loss for rendered shape
    /// scenes (single, count and overlap scenes of <c>make-data images</c>): a linear head of the run's own reads every
    /// patch's cross-attention source row and is trained to name the shape that covers that patch (the one whose colour has
    /// the most of its pixels, at least a fifth of them; otherwise "background"), so that the back shape of an overlap is
    /// named where it shows. Per image the mean cross-entropy over its patches, summed into the caption loss with this
    /// weight (training batches only). The head is not part of the saved model. Not part of Llama 3's recipe: 0 = off.</summary>
    public double ShapeLossWeight { get; init; }
    /// <summary><c>vision-stage1</c>/<c>vision-stage2</c>: weight of an anchor loss that keeps what the model already
    /// does for images other than rendered print: for every training image whose caption is not a word or number caption,
    /// the relative squared distance between its cross-attention source and that of the starting model
    /// (<c>model.init_from</c>, kept frozen beside the run) — Σ(s − s₀)² / Σs₀² per image, summed into the caption loss
    /// with this weight (training batches only). With the glyph loss it lets a round teach the encoder print while the
    /// scenes' source stays where it was. Not part of Llama 3's recipe: 0 (the default) = off; needs
    /// <c>model.init_from</c> to name a vision model.</summary>
    public double AnchorLossWeight { get; init; }
    /// <summary><c>vision-stage1</c>/<c>vision-stage2</c>: the vision model folder the anchor loss
    /// (<see cref="AnchorLossWeight"/>) compares with, when it is not the starting model: for example a model that still
    /// has the scenes, while the run starts from one that has since learnt print. Its cross-attention source must have the
    /// run's shape (the same tile size, patch size, tile count and decoder width). Null (the default) =
    /// <c>model.init_from</c>; only with <c>media.anchor_loss_weight</c> &gt; 0.</summary>
    public string? AnchorFrom { get; init; }
    /// <summary><see cref="GlyphHead"/>: read through the decoder's output head.</summary>
    public const string GlyphHeadOutput = "output";
    /// <summary><see cref="GlyphHead"/>: read by a linear head of the run's own.</summary>
    public const string GlyphHeadLinear = "linear";
}

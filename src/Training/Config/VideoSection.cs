namespace Llama3.Multimodal.Training;

/// <summary>Settings of the <c>video</c> recipe: the <c>video</c> section of its configs, e.g. <c>video.num_frames</c>.</summary>
public sealed record VideoSection
{
    /// <summary>Video preset a fresh model is built from (e.g. <c>tiny-video</c>, <c>llama3.2-11b-video</c>); null = the
    /// recipe's default.</summary>
    public string? Preset { get; init; }
    /// <summary>Frames sampled uniformly per clip (Llama 3 paper §7.4: 16 in video pretraining).</summary>
    public int NumFrames { get; init; } = 16;
    /// <summary>Consecutive frames the aggregator merges into one (Llama 3 paper §7.4: 16 → 1 in pretraining).</summary>
    public int FramesPerGroup { get; init; } = 16;
    /// <summary>How the aggregator merges a group's frames: <c>latents</c> (learned latents attend to all the group's tokens,
    /// the perceiver resampler's form) or <c>per_position</c> (each token position merged across the frames on its own, so
    /// the aggregated frame keeps the frame's layout); null = the preset's (<c>latents</c>). Only a fresh aggregator takes
    /// it: a video model named by <c>model.init_from</c> keeps its own.</summary>
    public string? AggregatorMerge { get; init; }
    /// <summary>With <c>per_position</c> merging, add the fixed 2-D code of each token's place in the frame to the aggregated
    /// frame (<c>place_code</c>); false = off.</summary>
    public bool AggregatorPlaceCode { get; init; }
    /// <summary>Fresh video cross-attention layers start as copies of the image cross-attention layer each precedes (gates
    /// still at zero, so the model starts exactly as the image model); false = random. A video model named by
    /// <c>model.init_from</c> keeps its own.</summary>
    public bool VideoFromImageLayers { get; init; }
    /// <summary>1-based ordinals of the image cross-attention layers a fresh video cross-attention layer is put before (e.g.
    /// <c>[1, 2]</c>); null = the preset's. A video model named by <c>model.init_from</c> keeps its own.</summary>
    public IReadOnlyList<int>? VideoLayersBefore { get; init; }
    /// <summary>Memory (MiB) for the clips' decoded frames, so that ffmpeg decodes each clip once rather than once per epoch
    /// (about <c>num_frames</c> × 3 × side² bytes per clip; 0 = decode every time).</summary>
    public int FrameCacheMb { get; init; } = 1024;
    /// <summary>An image-text folder (e.g. a later <c>vision-stage2</c> run) whose base weights (image encoder, projector,
    /// decoder) replace those of the video model named by <c>model.init_from</c>, which keeps its aggregator and video
    /// cross-attention (Llama 3's video finetuning: video parameters from video pretraining, image weights and LLM from
    /// their finetuned versions); null = keep the video model's own.</summary>
    public string? VisionFrom { get; init; }
}

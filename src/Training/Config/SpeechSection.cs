namespace Llama3.Multimodal.Training;

/// <summary>
/// Settings of the speech recipes: the <c>speech</c> section of their configs. <c>speech-stage1</c> (BEST-RQ
/// pretraining) has <see cref="BestRq"/>; <c>speech-stage2</c> (adapter training on ASR/AST dialogs) has
/// <see cref="Finetune"/>; the other is absent from its configs.
/// </summary>
public sealed record SpeechSection
{
    /// <summary>Speech preset a fresh model is built from (e.g. <c>tiny-speech</c>); null = the recipe's default.</summary>
    public string? Preset { get; init; }
    /// <summary>Longest utterance in 10 ms frames; longer ones are cropped to a window (Llama 3 paper §8.3: 6000 = 60 s).</summary>
    public int MaxAudioFrames { get; init; } = 6000;
    /// <summary><c>speech-stage1</c>: the BEST-RQ masking and quantizer settings.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public BestRqSection? BestRq { get; init; }
    /// <summary><c>speech-stage2</c>: the encoder source, prompt language and audio augmentation.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public SpeechFinetuneSection? Finetune { get; init; }
}

/// <summary>BEST-RQ pretraining settings (<c>speech.best_rq</c>; Llama 3 paper §8.3).</summary>
public sealed record BestRqSection
{
    /// <summary>Probability that a 10 ms frame starts a masked span (0.025).</summary>
    public double MaskProbability { get; init; } = 0.025;
    /// <summary>Span length in 10 ms frames (32).</summary>
    public int MaskSpan { get; init; } = 32;
    /// <summary>Codebooks (16).</summary>
    public int Codebooks { get; init; } = 16;
    /// <summary>Vectors per codebook (8192).</summary>
    public int CodebookSize { get; init; } = 8192;
    /// <summary>Utterances the per-bin mean/variance are measured on before training (0 = all training utterances).</summary>
    public int StatsUtterances { get; init; }
}

/// <summary>Speech adapter training settings (<c>speech.finetune</c>; Llama 3 paper §8.3).</summary>
public sealed record SpeechFinetuneSection
{
    /// <summary>Folder of a <c>speech-stage1</c> checkpoint whose encoder (and feature statistics) start the run; null = the
    /// speech model named by <c>model.init_from</c> continues.</summary>
    public string? EncoderFrom { get; init; }
    /// <summary>Language named in the ASR prompt when a record has none.</summary>
    public string Language { get; init; } = "English";
    /// <summary>SpecAugment masking of the training features (the Conformer paper's policy, see
    /// <c>Llama3.Multimodal.Speech.SpecAugment</c>); Llama 3 does not say, so off by default.</summary>
    public bool SpecAugment { get; init; }
    /// <summary>Speed perturbation of the training audio: each utterance, at each visit, is played at one of these rates drawn
    /// uniformly (e.g. <c>[0.9, 1.0, 1.1]</c>: resampled as if recorded at rate × 16 kHz, so tempo and pitch change together,
    /// as sox <c>speed</c>); empty = off (Llama 3 does not say).</summary>
    public IReadOnlyList<double> SpeedPerturb { get; init; } = Array.Empty<double>();
}

namespace Llama3.Multimodal.Speech;

/// <summary>Text produced from one audio file, with the time each stage took (seconds, wall clock).</summary>
public sealed record SpeechResult
{
    /// <summary>The output text (segments joined with a space).</summary>
    public required string Text { get; init; }
    /// <summary>Output text per ≤ 60 s segment.</summary>
    public required IReadOnlyList<string> Segments { get; init; }
    /// <summary>Duration of the audio.</summary>
    public double AudioSeconds { get; init; }
    /// <summary>Decoding the file, downmixing and resampling to 16 kHz.</summary>
    public double LoadSeconds { get; init; }
    /// <summary>Log-mel features.</summary>
    public double FeatureSeconds { get; init; }
    /// <summary>Speech encoder and adapter.</summary>
    public double EncoderSeconds { get; init; }
    /// <summary>Decoder prompt pass(es).</summary>
    public double PrefillSeconds { get; init; }
    /// <summary>Token-by-token decoding.</summary>
    public double DecodeSeconds { get; init; }
    /// <summary>Everything from the file to the text.</summary>
    public double TotalSeconds { get; init; }
    /// <summary>
    /// From the start of the run (reading the audio file, when the run starts from a path) to the first generated token;
    /// when no token is generated, to the end of the run.
    /// </summary>
    public double FirstTokenSeconds { get; init; }
    /// <summary>Cached decode steps over all segments (the rate is <see cref="DecodeSteps"/> / <see cref="DecodeSeconds"/>).</summary>
    public int DecodeSteps { get; init; }
    /// <summary>Tokens generated over all segments.</summary>
    public int GeneratedTokens { get; init; }
    /// <summary>Decoder prompt positions over all segments (chat tokens plus one per speech frame).</summary>
    public int PromptTokens { get; init; }
    /// <summary>Processing time divided by audio duration (below 1 = faster than real time).</summary>
    public double RealTimeFactor => AudioSeconds > 0 ? TotalSeconds / AudioSeconds : double.NaN;
}

namespace Llama3.Multimodal.Text;

/// <summary>Outcome of generating from one prompt.</summary>
public sealed record GenerationResult
{
    /// <summary>Generated ids (the stop token excluded).</summary>
    public required IReadOnlyList<int> Tokens { get; init; }
    /// <summary>Generated text (specials skipped).</summary>
    public required string Text { get; init; }
    /// <summary>Prompt length in tokens.</summary>
    public int PromptTokens { get; init; }
    /// <summary>Why generation ended: "stop" (a stop token) or "length".</summary>
    public string FinishReason { get; init; } = "length";
    /// <summary>Seconds spent in the media encoders (image, video) before the prompt forward pass; 0 for text.</summary>
    public double EncoderSeconds { get; init; }
    /// <summary>Seconds spent in the prompt forward pass.</summary>
    public double PrefillSeconds { get; init; }
    /// <summary>Seconds spent generating tokens after the first.</summary>
    public double DecodeSeconds { get; init; }
    /// <summary>Tokens decoded with the cache (excludes the token produced by prefill).</summary>
    public int DecodeSteps { get; init; }
}

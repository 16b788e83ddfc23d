namespace Llama3.Multimodal.Text;

/// <summary>Decoding settings. Temperature 0 means greedy (argmax); sampling is reproducible for a given <see cref="Seed"/>.</summary>
public sealed record GenerationOptions
{
    /// <summary>Most tokens to generate per prompt (128).</summary>
    public int MaxNewTokens { get; init; } = 128;
    /// <summary>Softmax temperature; 0 = greedy (default 0).</summary>
    public double Temperature { get; init; }
    /// <summary>Keep only the k most likely tokens (0 = off).</summary>
    public int TopK { get; init; }
    /// <summary>Nucleus sampling: keep the smallest set of tokens whose probability reaches p (1 = off).</summary>
    public double TopP { get; init; } = 1.0;
    /// <summary>Seed of the sampler (default 0).</summary>
    public long Seed { get; init; }
    /// <summary>Stop token ids; null = the tokenizer's (end_of_text, eom, eot).</summary>
    public IReadOnlyList<int>? StopTokens { get; init; }
    /// <summary>
    /// Beam search width (Hugging Face <c>num_beams</c>): 1 (default) decodes one sequence per prompt; more keeps that many
    /// candidates per prompt and returns the one with the best length-normalised log-probability. Needs
    /// <see cref="Temperature"/> 0. With beams, tokens reach the per-token callback only once the winner is known.
    /// </summary>
    public int NumBeams { get; init; } = 1;
    /// <summary>
    /// Beam search: a finished candidate's score is its summed log-probability divided by (its length in tokens, the stop
    /// token included) to this power (Hugging Face <c>length_penalty</c>, default 1; 0 = no normalisation).
    /// </summary>
    public double LengthPenalty { get; init; } = 1.0;

    /// <summary>Checks ranges; throws <see cref="ArgumentException"/> naming the bad value.</summary>
    public GenerationOptions Validate()
    {
        if (MaxNewTokens < 0) throw new ArgumentException($"max new tokens {MaxNewTokens} must be ≥ 0.");
        if (!double.IsFinite(Temperature) || Temperature < 0) throw new ArgumentException($"temperature {Temperature} must be finite and ≥ 0.");
        if (TopK < 0) throw new ArgumentException($"top-k {TopK} must be ≥ 0.");
        if (!double.IsFinite(TopP) || TopP <= 0 || TopP > 1) throw new ArgumentException($"top-p {TopP} must be in (0, 1].");
        if (NumBeams < 1) throw new ArgumentException($"number of beams {NumBeams} must be ≥ 1.");
        if (NumBeams > 1 && Temperature != 0) throw new ArgumentException($"beam search ({NumBeams} beams) decodes greedily; set temperature 0 (it is {Temperature}).");
        if (!double.IsFinite(LengthPenalty)) throw new ArgumentException($"length penalty {LengthPenalty} must be finite.");
        return this;
    }
}

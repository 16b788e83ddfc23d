using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Speech;

/// <summary>
/// BEST-RQ pretraining settings (Llama 3 paper §8.3 values; the N(0, 0.1²) fill is BEST-RQ's own): span masking with
/// start probability 0.025 and 32-frame spans (overlap allowed, masked frames filled with N(0, 0.1²)), 16 frozen
/// random-projection codebooks of 8192 vectors of width 16 on 4 stacked frames, a 40 ms frame counting as masked when
/// any of its 10 ms frames is.
/// </summary>
public sealed record BestRqConfig
{
    /// <summary>Probability that a 10 ms frame starts a mask span (0.025).</summary>
    public double MaskStartProbability { get; init; } = 0.025;
    /// <summary>Frames per span (32).</summary>
    public int MaskSpan { get; init; } = 32;
    /// <summary>Standard deviation of the noise that replaces masked frames (0.1).</summary>
    public double MaskNoiseStd { get; init; } = 0.1;
    /// <summary>Number of codebooks, each with its own projection and softmax head (16).</summary>
    public int NumCodebooks { get; init; } = 16;
    /// <summary>Vectors per codebook (8192).</summary>
    public int CodebookSize { get; init; } = 8192;
    /// <summary>Width of the projected space (16).</summary>
    public int CodeDim { get; init; } = 16;
    /// <summary>Seed of the frozen projections and codebooks.</summary>
    public long QuantizerSeed { get; init; } = 1234;

    /// <summary>Expected masked fraction of interior 10 ms frames: 1 − (1 − p)^span (≈ 0.5552).</summary>
    public double ExpectedMaskedFraction => 1 - Math.Pow(1 - MaskStartProbability, MaskSpan);

    /// <summary>Checks the values; throws <see cref="ConfigException"/> naming the bad one.</summary>
    public BestRqConfig Validate(string source = "BEST-RQ config")
    {
        if (!(MaskStartProbability is > 0 and < 1)) throw new ConfigException($"{source}: mask start probability {MaskStartProbability} must be in (0, 1).");
        if (MaskSpan < 1) throw new ConfigException($"{source}: mask span {MaskSpan} must be at least 1.");
        if (!(MaskNoiseStd >= 0)) throw new ConfigException($"{source}: mask noise std {MaskNoiseStd} must be ≥ 0.");
        if (NumCodebooks < 1 || CodebookSize < 2 || CodeDim < 1)
            throw new ConfigException($"{source}: codebooks {NumCodebooks} × {CodebookSize} × {CodeDim} must be positive (size ≥ 2).");
        return this;
    }
}

namespace Llama3.Multimodal.Text;

/// <summary>
/// Llama 3.1 rotary frequency scaling (<c>rope_scaling.rope_type = "llama3"</c>).
/// Wavelengths shorter than <c>OriginalMaxPositionEmbeddings / HighFreqFactor</c> keep their frequency, those longer than
/// <c>OriginalMaxPositionEmbeddings / LowFreqFactor</c> are divided by <c>Factor</c>, and the band between is interpolated.
/// </summary>
/// <param name="Factor">Frequency divisor for long wavelengths (8 for Llama 3.1, 32 for Llama 3.2 1B/3B).</param>
/// <param name="LowFreqFactor">Low-frequency factor (1).</param>
/// <param name="HighFreqFactor">High-frequency factor (4).</param>
/// <param name="OriginalMaxPositionEmbeddings">Pretraining context length (8192).</param>
public sealed record RopeScaling(double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositionEmbeddings);

using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Speech;

/// <summary>
/// Shape of the Conformer speech encoder (Llama 3 paper §8.2). Defaults are the full-size Llama 3 encoder: 80 mel bins
/// stacked 4 at a time (80 → 320, 40 ms frames), dim 1536, 24 layers, 24 heads, Macaron FFN 4096, depthwise kernel 7,
/// rotary theta 10000 (≈ 1.0B parameters).
/// </summary>
public sealed record ConformerConfig
{
    /// <summary>Log-mel bins per 10 ms input frame (80).</summary>
    public int MelBins { get; init; } = 80;
    /// <summary>Input frames concatenated per encoder frame (4: 10 ms → 40 ms).</summary>
    public int StackFrames { get; init; } = 4;
    /// <summary>Model width (1536).</summary>
    public int Dim { get; init; } = 1536;
    /// <summary>Conformer layers (24).</summary>
    public int NumLayers { get; init; } = 24;
    /// <summary>Attention heads (24; head dim = Dim / NumHeads, must be even for rotary).</summary>
    public int NumHeads { get; init; } = 24;
    /// <summary>Hidden width of each Macaron feed-forward (4096).</summary>
    public int FfnDim { get; init; } = 4096;
    /// <summary>Depthwise convolution kernel (7, odd, "same" padding).</summary>
    public int ConvKernel { get; init; } = 7;
    /// <summary>Rotary base (10000).</summary>
    public double RopeTheta { get; init; } = 10000;
    /// <summary>LayerNorm epsilon (1e-5).</summary>
    public double LayerNormEps { get; init; } = 1e-5;
    /// <summary>Longest input in 40 ms frames the rotary tables allow (65536 ≈ 43 min).</summary>
    public int MaxFrames { get; init; } = 65536;

    /// <summary>Input width of the projection after stacking (MelBins × StackFrames).</summary>
    public int StackedDim => MelBins * StackFrames;
    /// <summary>Per-head width.</summary>
    public int HeadDim => Dim / NumHeads;

    /// <summary>Encoder frames for <paramref name="melFrames"/> input frames: ⌈T/4⌉ (the last group is zero-padded).</summary>
    public long OutputFrames(long melFrames) => (melFrames + StackFrames - 1) / StackFrames;

    /// <summary>Checks the values; throws <see cref="ConfigException"/> naming the bad one.</summary>
    public ConformerConfig Validate(string source = "speech encoder config")
    {
        void Positive(int v, string name) { if (v <= 0) throw new ConfigException($"{source}: {name} = {v} must be positive."); }
        Positive(MelBins, "mel_bins"); Positive(StackFrames, "stack_frames"); Positive(Dim, "dim"); Positive(NumLayers, "num_layers");
        Positive(NumHeads, "num_heads"); Positive(FfnDim, "ffn_dim"); Positive(ConvKernel, "conv_kernel"); Positive(MaxFrames, "max_frames");
        if (Dim % NumHeads != 0 || HeadDim % 2 != 0)
            throw new ConfigException($"{source}: dim {Dim} must split into {NumHeads} heads of even width (rotary).");
        if (ConvKernel % 2 == 0) throw new ConfigException($"{source}: conv_kernel {ConvKernel} must be odd for same padding.");
        if (!(RopeTheta > 0)) throw new ConfigException($"{source}: rope_theta {RopeTheta} must be positive.");
        if (!(LayerNormEps > 0)) throw new ConfigException($"{source}: layer_norm_eps {LayerNormEps} must be positive.");
        return this;
    }
}

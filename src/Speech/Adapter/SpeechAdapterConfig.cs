using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Speech;

/// <summary>
/// Shape of the speech adapter (Llama 3 paper §8.2): conv kernel 3 stride 2 (encoder dim → <see cref="Dim"/>, 40 ms →
/// 80 ms frames), one rotary Transformer layer (width <see cref="Dim"/>, FFN <see cref="FfnDim"/>), LayerNorm, and a
/// linear layer to the decoder's hidden size. Defaults are the full size for Llama 3 8B (≈ 90M parameters).
/// </summary>
public sealed record SpeechAdapterConfig
{
    /// <summary>Input width = the encoder's dim (1536).</summary>
    public int InputDim { get; init; } = 1536;
    /// <summary>Latent width of the adapter (3072).</summary>
    public int Dim { get; init; } = 3072;
    /// <summary>Attention heads of the adapter layer (48: head dim 64).</summary>
    public int NumHeads { get; init; } = 48;
    /// <summary>Feed-forward width (4096).</summary>
    public int FfnDim { get; init; } = 4096;
    /// <summary>Convolution kernel (3).</summary>
    public int ConvKernel { get; init; } = 3;
    /// <summary>Convolution stride (2).</summary>
    public int ConvStride { get; init; } = 2;
    /// <summary>Output width = the decoder's hidden size (4096 for 8B).</summary>
    public int OutputDim { get; init; } = 4096;
    /// <summary>Rotary base (10000).</summary>
    public double RopeTheta { get; init; } = 10000;
    /// <summary>LayerNorm epsilon (1e-5).</summary>
    public double LayerNormEps { get; init; } = 1e-5;
    /// <summary>Longest input in adapter frames the rotary tables allow.</summary>
    public int MaxFrames { get; init; } = 65536;

    /// <summary>Adapter frames for <paramref name="encoderFrames"/> encoder frames: ⌈T/stride⌉ (padding k/2).</summary>
    public long OutputFrames(long encoderFrames) => (encoderFrames + ConvStride - 1) / ConvStride;

    /// <summary>Checks the values; throws <see cref="ConfigException"/> naming the bad one.</summary>
    public SpeechAdapterConfig Validate(string source = "speech adapter config")
    {
        void Positive(int v, string name) { if (v <= 0) throw new ConfigException($"{source}: {name} = {v} must be positive."); }
        Positive(InputDim, "input_dim"); Positive(Dim, "dim"); Positive(NumHeads, "num_heads"); Positive(FfnDim, "ffn_dim");
        Positive(ConvKernel, "conv_kernel"); Positive(ConvStride, "conv_stride"); Positive(OutputDim, "output_dim"); Positive(MaxFrames, "max_frames");
        if (Dim % NumHeads != 0 || Dim / NumHeads % 2 != 0)
            throw new ConfigException($"{source}: dim {Dim} must split into {NumHeads} heads of even width (rotary).");
        if (ConvKernel % 2 == 0) throw new ConfigException($"{source}: conv_kernel {ConvKernel} must be odd.");
        if (ConvKernel < ConvStride) throw new ConfigException($"{source}: conv_kernel {ConvKernel} must be at least the stride {ConvStride}.");
        return this;
    }
}

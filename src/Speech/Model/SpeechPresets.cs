using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Speech;

/// <summary>Speech model shapes: the full-size Llama 3 speech encoder + adapter on the 8B/70B decoders, and <c>tiny-speech</c> for tests.</summary>
public static class SpeechPresets
{
    /// <summary>Preset names accepted by <see cref="Get"/>.</summary>
    public static IReadOnlyList<string> Names { get; } = new[] { "tiny-speech", "llama3.1-8b-speech", "llama3.1-70b-speech" };

    /// <summary>Returns the preset named <paramref name="name"/>; throws <see cref="ConfigException"/> listing the known names.</summary>
    public static SpeechModelConfig Get(string name) => name switch
    {
        // Conformer dim 96 (4 heads of 24), 2 layers, kernel 7; adapter 128 wide; the "tiny" text decoder (dim 64).
        "tiny-speech" => new SpeechModelConfig
        {
            Text = TextPresets.Get("tiny"),
            Encoder = new ConformerConfig { Dim = 96, NumLayers = 2, NumHeads = 4, FfnDim = 256, ConvKernel = 7, MaxFrames = 8192 },
            Adapter = new SpeechAdapterConfig { InputDim = 96, Dim = 128, NumHeads = 4, FfnDim = 256, OutputDim = 64, MaxFrames = 8192 },
        },
        "llama3.1-8b-speech" => Full(TextPresets.Get("llama3.1-8b")),
        "llama3.1-70b-speech" => Full(TextPresets.Get("llama3.1-70b")),
        _ => throw new ConfigException($"unknown speech preset '{name}'; known: {string.Join(", ", Names)}."),
    };

    static SpeechModelConfig Full(LlamaConfig text) => new()
    {
        Text = text,
        Encoder = new ConformerConfig(),
        Adapter = new SpeechAdapterConfig { OutputDim = text.HiddenSize },
    };
}

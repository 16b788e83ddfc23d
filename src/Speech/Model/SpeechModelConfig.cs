using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Speech;

/// <summary>
/// Full configuration of a <see cref="SpeechLanguageModel"/>: the text decoder, the speech encoder, the adapter, and the
/// two special tokens that enclose the speech span in the prompt (by default
/// <c>&lt;|reserved_special_token_10|&gt;</c> = 128018 and <c>&lt;|reserved_special_token_11|&gt;</c> = 128019).
/// </summary>
public sealed record SpeechModelConfig
{
    /// <summary>The Llama 3 text decoder.</summary>
    public required LlamaConfig Text { get; init; }
    /// <summary>The Conformer speech encoder.</summary>
    public required ConformerConfig Encoder { get; init; }
    /// <summary>The speech adapter (its input/output widths must match the encoder and the decoder).</summary>
    public required SpeechAdapterConfig Adapter { get; init; }
    /// <summary>Special token opening the speech span.</summary>
    public string SpeechStartToken { get; init; } = "<|reserved_special_token_10|>";
    /// <summary>Special token closing the speech span.</summary>
    public string SpeechEndToken { get; init; } = "<|reserved_special_token_11|>";

    /// <summary>
    /// This config attached to the text decoder <paramref name="text"/> (Llama 3 §8.1: the speech module joins a
    /// pretrained language model, whose config is kept): <see cref="Text"/> becomes <paramref name="text"/> and the
    /// adapter's output width its hidden size; the encoder and the rest of the adapter stay.
    /// </summary>
    public SpeechModelConfig ForTextModel(LlamaConfig text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return this with { Text = text, Adapter = Adapter with { OutputDim = text.HiddenSize } };
    }

    /// <summary>Checks every part and that the widths agree; throws <see cref="ConfigException"/>.</summary>
    public SpeechModelConfig Validate(string source = "speech model config")
    {
        Text.Validate(source + " (text)");
        Encoder.Validate(source + " (speech encoder)");
        Adapter.Validate(source + " (speech adapter)");
        if (Adapter.InputDim != Encoder.Dim)
            throw new ConfigException($"{source}: adapter input_dim {Adapter.InputDim} differs from the encoder dim {Encoder.Dim}.");
        if (Adapter.OutputDim != Text.HiddenSize)
            throw new ConfigException($"{source}: adapter output_dim {Adapter.OutputDim} differs from the decoder hidden_size {Text.HiddenSize}.");
        if (SpeechStartToken == SpeechEndToken) throw new ConfigException($"{source}: speech start and end tokens must differ ('{SpeechStartToken}').");
        return this;
    }
}

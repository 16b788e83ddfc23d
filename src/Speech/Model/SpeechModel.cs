using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech;

/// <summary>
/// The speech side of a <see cref="SpeechLanguageModel"/>, registered as <c>speech_model</c>: the Conformer
/// <c>encoder</c> and the <c>adapter</c>. Turns log-mel features into decoder-width embeddings (one per 80 ms).
/// </summary>
public sealed class SpeechModel : nn.Module
{
#pragma warning disable IDE1006 // checkpoint key names
    /// <summary>The Conformer encoder.</summary>
    public readonly ConformerEncoder encoder;
    /// <summary>The adapter.</summary>
    public readonly SpeechAdapter adapter;
#pragma warning restore IDE1006

    /// <summary>Builds both parts with uninitialised weights.</summary>
    public SpeechModel(ConformerConfig encoderConfig, SpeechAdapterConfig adapterConfig, Device? device, ScalarType dtype) : base("SpeechModel")
    {
        encoder = new ConformerEncoder(encoderConfig, device, dtype);
        adapter = new SpeechAdapter(adapterConfig, device, dtype);
        RegisterComponents();
    }

    /// <summary>
    /// Both parts of <paramref name="config"/> with seeded random weights, as <see cref="SpeechLanguageModel.Create(SpeechModelConfig, Device?, ScalarType, long, Llama3Tokenizer?)"/>
    /// draws them for the same seed: the encoder from <paramref name="seed"/> + 1 (feature statistics at identity), the
    /// adapter from <paramref name="seed"/> + 2.
    /// </summary>
    public static SpeechModel Create(SpeechModelConfig config, long seed, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        ArgumentNullException.ThrowIfNull(config);
        var m = new SpeechModel(config.Encoder, config.Adapter, device, dtype);
        if ((device ?? CPU).type != DeviceType.META)
        {
            m.encoder.InitializeWeights(seed + 1);
            WeightInit.Apply(m.adapter, seed + 2);
        }
        return m;
    }

    /// <summary>
    /// A fresh speech module (Conformer encoder and adapter of <paramref name="preset"/>) for the text decoder
    /// <paramref name="text"/> (Llama 3 §8.1): its adapter writes <paramref name="text"/>'s embedding width, on
    /// <paramref name="text"/>'s device and dtype, seeded as <see cref="Create"/>. The decoder is not changed; its config
    /// with this module is <c>preset.ForTextModel(text.Config)</c>.
    /// </summary>
    public static SpeechModel ForTextModel(LlamaForCausalLM text, SpeechModelConfig preset, long seed = 0)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(preset);
        return Create(preset.ForTextModel(text.Config), seed, text.Device, text.DType);
    }

    /// <summary>
    /// Log-mel [B, T, 80] with frame counts [B] → embeddings [B, ⌈⌈T/4⌉/2⌉, decoder dim] and their counts [B].
    /// <paramref name="cancel"/> is checked between the encoder's layers.
    /// </summary>
    public (Tensor Embeddings, Tensor Lengths) Forward(Tensor features, Tensor lengths, CancellationToken cancel = default)
    {
        using var scope = NewDisposeScope();
        var (h, l) = encoder.Forward(features, lengths, cancel);
        cancel.ThrowIfCancellationRequested();
        var (e, l2) = adapter.Forward(h, l);
        return (e.MoveToOuterDisposeScope(), l2.MoveToOuterDisposeScope());
    }

    /// <summary>Decoder positions taken by <paramref name="melFrames"/> log-mel frames (6000 → 750).</summary>
    public long OutputFrames(long melFrames) => adapter.Config.OutputFrames(encoder.Config.OutputFrames(melFrames));
}

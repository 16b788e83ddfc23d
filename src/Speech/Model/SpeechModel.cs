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

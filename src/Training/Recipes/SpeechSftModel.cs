using Llama3.Multimodal.Speech;
using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// What <c>speech-stage2</c> trains: the decoder (<c>language_model</c>) and the speech encoder + adapter
/// (<c>speech_model</c>), with the same keys as <see cref="SpeechLanguageModel"/>, for any training tokenizer.
/// </summary>
public sealed class SpeechSftModel : nn.Module, Text.IComponentModel
{
#pragma warning disable IDE1006 // checkpoint key names
    /// <summary>The text decoder.</summary>
    public readonly LlamaForCausalLM language_model;
    /// <summary>The Conformer encoder and the adapter.</summary>
    public readonly SpeechModel speech_model;
#pragma warning restore IDE1006

    /// <summary>The components training chooses from: <c>language_model</c> (the decoder), <c>embed_tokens</c>, <c>encoder</c> (input projection and Conformer layers), <c>feature_stats</c> (the frozen per-bin statistics) and <c>adapter</c>.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> Components { get; } = new Dictionary<string, IReadOnlyList<string>>
    {
        ["language_model"] = new[] { "language_model" },
        ["embed_tokens"] = new[] { "language_model.model.embed_tokens" },
        ["encoder"] = new[] { "speech_model.encoder.input_proj", "speech_model.encoder.layers" },
        ["feature_stats"] = new[] { "speech_model.encoder.feature_norm" },
        ["adapter"] = new[] { "speech_model.adapter" },
    };

    /// <summary>The configuration (decoder, encoder, adapter).</summary>
    public SpeechModelConfig Config { get; }

    /// <summary>Wraps <paramref name="decoder"/> with a fresh (seeded) speech encoder and adapter per <paramref name="config"/> (<see cref="SpeechModel.Create"/>).</summary>
    public SpeechSftModel(LlamaForCausalLM decoder, SpeechModelConfig config, long seed, Device device, ScalarType dtype)
        : this(decoder, SpeechModel.Create(config, seed, device, dtype), config) { }

    /// <summary>Trains <paramref name="decoder"/> with the speech module <paramref name="speech"/> (e.g. <see cref="SpeechModel.ForTextModel"/>); <paramref name="config"/> describes both.</summary>
    public SpeechSftModel(LlamaForCausalLM decoder, SpeechModel speech, SpeechModelConfig config) : base("SpeechSftModel")
    {
        ArgumentNullException.ThrowIfNull(decoder);
        ArgumentNullException.ThrowIfNull(speech);
        Config = config ?? throw new ArgumentNullException(nameof(config));
        language_model = decoder;
        speech_model = speech;
        RegisterComponents();
    }

    /// <summary>
    /// Input embeddings [B, L, D] of token rows [B, L] with each row's adapter outputs placed at its speech span:
    /// <paramref name="offsets"/>[b] is the first filler position and <paramref name="spans"/>[b] its length.
    /// </summary>
    public Tensor Splice(Tensor ids, Tensor features, Tensor lengths, IReadOnlyList<int> offsets, IReadOnlyList<int> spans)
    {
        using var scope = NewDisposeScope();
        var (speech, _) = speech_model.Forward(features, lengths);                            // [B, N, D]
        return SpliceEmbeddings(ids, speech, offsets, spans).MoveToOuterDisposeScope();
    }

    /// <summary>As <see cref="Splice"/> with already computed adapter outputs <paramref name="speech"/> [B, N, D].</summary>
    public Tensor SpliceEmbeddings(Tensor ids, Tensor speech, IReadOnlyList<int> offsets, IReadOnlyList<int> spans)
    {
        using var scope = NewDisposeScope();
        var emb = language_model.Embed(ids);                                                  // [B, L, D]
        speech = speech.to(emb.dtype);
        long l = ids.shape[1];
        var rows = new List<Tensor>();
        for (int b = 0; b < offsets.Count; b++)
        {
            int at = offsets[b], n = spans[b];
            var e = emb[b];
            rows.Add(torch.cat(new[] { e.narrow(0, 0, at), speech[b].narrow(0, 0, n), e.narrow(0, at + n, l - at - n) }, 0));
        }
        return torch.stack(rows.ToArray()).MoveToOuterDisposeScope();
    }
}

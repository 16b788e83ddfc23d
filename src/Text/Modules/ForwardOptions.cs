using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>Optional inputs of a decoder forward pass.</summary>
public sealed record ForwardOptions
{
    /// <summary>Position ids [B, T] int64; default: cache length + 0…T−1 (or restarting per document).</summary>
    public Tensor? Positions { get; init; }
    /// <summary>KV cache to read and extend.</summary>
    public KvCache? Cache { get; init; }
    /// <summary>[B, cache length + T] bool: which key positions are real tokens (false = left padding).</summary>
    public Tensor? KeyValid { get; init; }
    /// <summary>[B, T] document ids of packed sequences: no attention across documents, positions restart per document.</summary>
    public Tensor? DocumentIds { get; init; }
    /// <summary>Media states for cross-attention blocks.</summary>
    public IReadOnlyDictionary<string, object>? Media { get; init; }
    /// <summary>Return logits for the last position only ([B, 1, V]).</summary>
    public bool LastOnly { get; init; }
}

using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>The decoder stack (HF <c>model</c>): token embedding, blocks, final RMSNorm.</summary>
public sealed class LlamaTextModel : nn.Module
{
#pragma warning disable IDE1006
    /// <summary>Token embedding.</summary>
    public readonly TokenEmbedding embed_tokens;
    /// <summary>Decoder blocks (self-attention layers, and cross-attention blocks in multimodal models).</summary>
    public readonly ModuleList<DecoderBlock> layers;
    /// <summary>Final norm.</summary>
    public readonly RmsNorm norm;
#pragma warning restore IDE1006

    /// <summary>Assembles the stack from blocks.</summary>
    public LlamaTextModel(TokenEmbedding embedding, IEnumerable<DecoderBlock> blocks, RmsNorm finalNorm) : base("LlamaTextModel")
    {
        embed_tokens = embedding;
        layers = new ModuleList<DecoderBlock>(blocks.ToArray());
        for (int i = 0; i < layers.Count; i++) layers[i].LayerIndex = i;
        norm = finalNorm;
        RegisterComponents();
    }

    // Blocks owned by another module that run right before layer i (see InsertBefore), in insertion order.
    readonly SortedDictionary<int, List<DecoderBlock>> _inserted = new();
    int _insertedCount;

    /// <summary>
    /// Runs <paramref name="block"/> right before <c>layers[<paramref name="layer"/>]</c> on every forward pass, without
    /// making it part of this stack: it stays registered (and checkpointed) under the module that owns it, e.g. the video
    /// cross-attention layers under <c>video_model.cross_attention_layers</c>, so the stack keeps its own numbering and
    /// keys. The block takes KV-cache slot <c>layers.Count + k</c> (k = blocks inserted before it) and the device of the
    /// layer it precedes.
    /// </summary>
    public void InsertBefore(int layer, DecoderBlock block)
    {
        if (layer < 0 || layer >= layers.Count) throw new ArgumentOutOfRangeException(nameof(layer), $"layer {layer} is outside the stack's 0..{layers.Count - 1}.");
        block.LayerIndex = layers.Count + _insertedCount++;
        block.PlacedOn = layers[layer].PlacedOn;
        if (!_inserted.TryGetValue(layer, out var list)) _inserted[layer] = list = new List<DecoderBlock>();
        list.Add(block);
    }

    /// <summary>KV-cache slots a forward pass uses: the stack's layers plus the inserted blocks.</summary>
    public int CacheSlots => layers.Count + _insertedCount;

    /// <summary>The blocks in the order a forward pass runs them (inserted blocks before their layer).</summary>
    internal IEnumerable<DecoderBlock> DecodeOrder() => _insertedCount == 0 ? layers : Blocks();

    IEnumerable<DecoderBlock> Blocks()
    {
        for (int i = 0; i < layers.Count; i++)
        {
            if (_inserted.TryGetValue(i, out var before)) foreach (var b in before) yield return b;
            yield return layers[i];
        }
    }

    /// <summary>Runs the blocks and the final norm on embeddings [B, T, D].</summary>
    public Tensor Forward(Tensor embeddings, DecoderContext ctx)
    {
        using var scope = NewDisposeScope();
        var h = embeddings;
        foreach (var block in _insertedCount == 0 ? layers : Blocks())
        {
            var c = ctx;
            if (block.PlacedOn is { } dev && (h.device_type != dev.type || h.device_index != dev.index))
            {
                var moved = h.to(dev);
                if (!ReferenceEquals(h, embeddings)) h.Dispose();
                h = moved;
                c = ctx.On(dev);
            }
            else if (block.PlacedOn is { } same) c = ctx.On(same);
            var next = block.Forward(h, c);
            if (!ReferenceEquals(h, embeddings)) h.Dispose();
            h = next;
        }
        var nd = norm.weight.device;
        if (h.device_type != nd.type || h.device_index != nd.index) h = h.to(nd);
        return norm.forward(h).MoveToOuterDisposeScope();
    }
}

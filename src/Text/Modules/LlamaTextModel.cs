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

    /// <summary>Runs the blocks and the final norm on embeddings [B, T, D].</summary>
    public Tensor Forward(Tensor embeddings, DecoderContext ctx)
    {
        using var scope = NewDisposeScope();
        var h = embeddings;
        foreach (var block in layers)
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

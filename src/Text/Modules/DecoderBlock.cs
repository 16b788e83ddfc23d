using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>
/// One block of the decoder stack. Text models hold only <see cref="LlamaDecoderLayer"/>s; multimodal models
/// interleave cross-attention blocks at configured indices (the fusion seam).
/// </summary>
public abstract class DecoderBlock : nn.Module
{
    /// <summary>Creates the block.</summary>
    protected DecoderBlock(string name) : base(name) { }

    /// <summary>Index of this block in the stack (its KV-cache slot).</summary>
    public int LayerIndex { get; internal set; }

    /// <summary>Device holding this block's weights when a model is split over several devices (null: the model's device).</summary>
    public Device? PlacedOn { get; internal set; }

    /// <summary>Transforms hidden states [B, T, D].</summary>
    public abstract Tensor Forward(Tensor hidden, DecoderContext context);
}

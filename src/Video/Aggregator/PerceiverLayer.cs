using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Video;

/// <summary>One perceiver layer: <c>lat = lat + Attn(media, lat)</c>, then <c>lat = lat + FFN(lat)</c> (pre-norm, as Flamingo).</summary>
public sealed class PerceiverLayer : nn.Module
{
#pragma warning disable IDE1006
    /// <summary>Latents attending to media and themselves.</summary>
    public readonly PerceiverAttention attn;
    /// <summary>Feed-forward.</summary>
    public readonly PerceiverFeedForward ffn;
#pragma warning restore IDE1006

    /// <summary>Assembles the layer from its parts.</summary>
    public PerceiverLayer(PerceiverAttention attention, PerceiverFeedForward feedForward) : base("PerceiverLayer")
    {
        attn = attention;
        ffn = feedForward;
        RegisterComponents();
    }

    /// <summary>media [B, S, D], latents [B, L, D] → latents [B, L, D].</summary>
    public Tensor Forward(Tensor media, Tensor latents)
    {
        using var scope = NewDisposeScope();
        var h = Scalars.Add(latents, attn.Forward(media, latents));
        return Scalars.Add(h, ffn.forward(h)).MoveToOuterDisposeScope();
    }
}

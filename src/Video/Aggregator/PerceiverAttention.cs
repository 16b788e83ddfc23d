using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Video;

/// <summary>
/// Perceiver attention as in Flamingo: queries from the normed latents; keys and values from the normed media tokens
/// concatenated with the normed latents; no biases; scale head_dim^−½. Returns the update to add to the latents.
/// </summary>
public sealed class PerceiverAttention : nn.Module
{
    readonly int _heads, _headDim;
#pragma warning disable IDE1006
    /// <summary>Norm of the media tokens.</summary>
    public readonly PerceiverLayerNorm norm_media;
    /// <summary>Norm of the latents.</summary>
    public readonly PerceiverLayerNorm norm_latents;
    /// <summary>Query projection [heads·hd, dim].</summary>
    public readonly Linear q_proj;
    /// <summary>Key projection [heads·hd, dim].</summary>
    public readonly Linear k_proj;
    /// <summary>Value projection [heads·hd, dim].</summary>
    public readonly Linear v_proj;
    /// <summary>Output projection [dim, heads·hd].</summary>
    public readonly Linear o_proj;
#pragma warning restore IDE1006

    /// <summary>Creates the attention (weights uninitialised).</summary>
    public PerceiverAttention(TemporalAggregatorConfig c, Device? device, ScalarType dtype) : base("PerceiverAttention")
    {
        _heads = c.NumHeads; _headDim = c.HeadDim;
        long inner = (long)c.NumHeads * c.HeadDim;
        norm_media = new PerceiverLayerNorm(c.Dim, c.LayerNormEps, device, dtype);
        norm_latents = new PerceiverLayerNorm(c.Dim, c.LayerNormEps, device, dtype);
        q_proj = Layers.Linear(c.Dim, inner, false, device, dtype);
        k_proj = Layers.Linear(c.Dim, inner, false, device, dtype);
        v_proj = Layers.Linear(c.Dim, inner, false, device, dtype);
        o_proj = Layers.Linear(inner, c.Dim, false, device, dtype);
        RegisterComponents();
    }

    /// <summary>media [B, S, D], latents [B, L, D] → update [B, L, D].</summary>
    public Tensor Forward(Tensor media, Tensor latents)
    {
        using var scope = NewDisposeScope();
        long b = latents.shape[0], l = latents.shape[1];
        var lat = norm_latents.forward(latents);
        var kvIn = torch.cat(new[] { norm_media.forward(media), lat }, 1);                       // [B, S+L, D]
        long s = kvIn.shape[1];
        var q = q_proj.forward(lat).view(b, l, _heads, _headDim).transpose(1, 2);               // [B, H, L, hd]
        var k = k_proj.forward(kvIn).view(b, s, _heads, _headDim).transpose(1, 2);              // [B, H, S+L, hd]
        var v = v_proj.forward(kvIn).view(b, s, _heads, _headDim).transpose(1, 2);
        var o = nn.functional.scaled_dot_product_attention(q, k, v);                            // [B, H, L, hd]
        return o_proj.forward(o.transpose(1, 2).reshape(b, l, _heads * _headDim)).MoveToOuterDisposeScope();
    }
}

using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech;

/// <summary>
/// One Conformer block (Gulati et al. 2020, the paper's order): <c>x + ½FFN(LN x)</c> → <c>x + MHSA(LN x)</c> →
/// <c>x + Conv(LN x)</c> → <c>x + ½FFN(LN x)</c> → LayerNorm.
/// </summary>
public sealed class ConformerLayer : nn.Module
{
#pragma warning disable IDE1006 // checkpoint key names
    /// <summary>Pre-norm of the first feed-forward.</summary>
    public readonly LayerNorm ffn1_norm;
    /// <summary>First Macaron feed-forward.</summary>
    public readonly SwishFeedForward ffn1;
    /// <summary>Pre-norm of the attention.</summary>
    public readonly LayerNorm self_attn_norm;
    /// <summary>Rotary self-attention.</summary>
    public readonly RotarySelfAttention self_attn;
    /// <summary>Pre-norm of the convolution module.</summary>
    public readonly LayerNorm conv_norm;
    /// <summary>Convolution module.</summary>
    public readonly ConformerConvModule conv;
    /// <summary>Pre-norm of the second feed-forward.</summary>
    public readonly LayerNorm ffn2_norm;
    /// <summary>Second Macaron feed-forward.</summary>
    public readonly SwishFeedForward ffn2;
    /// <summary>The block's closing LayerNorm.</summary>
    public readonly LayerNorm final_norm;
#pragma warning restore IDE1006

    /// <summary>Creates the block (weights uninitialised).</summary>
    public ConformerLayer(ConformerConfig c, Device? device, ScalarType dtype) : base("ConformerLayer")
    {
        LayerNorm Ln() => nn.LayerNorm(c.Dim, c.LayerNormEps, device: device, dtype: dtype);
        ffn1_norm = Ln(); ffn1 = new SwishFeedForward(c.Dim, c.FfnDim, device, dtype);
        self_attn_norm = Ln(); self_attn = new RotarySelfAttention(c.Dim, c.NumHeads, device, dtype);
        conv_norm = Ln(); conv = new ConformerConvModule(c.Dim, c.ConvKernel, c.LayerNormEps, device, dtype);
        ffn2_norm = Ln(); ffn2 = new SwishFeedForward(c.Dim, c.FfnDim, device, dtype);
        final_norm = Ln();
        RegisterComponents();
    }

    /// <summary>
    /// x [B, T, d]; cos/sin [1, 1, T, head_dim]; keyValid [B, 1, 1, T] bool and valid [B, T, 1] (x's dtype) or both null.
    /// </summary>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? keyValid, Tensor? valid)
    {
        using var scope = NewDisposeScope();
        x = x.add(ffn1.forward(ffn1_norm.forward(x)), Scalars.Half);
        x = Scalars.Add(x, self_attn.Forward(self_attn_norm.forward(x), cos, sin, keyValid));
        x = Scalars.Add(x, conv.Forward(conv_norm.forward(x), valid));
        x = x.add(ffn2.forward(ffn2_norm.forward(x)), Scalars.Half);
        return final_norm.forward(x).MoveToOuterDisposeScope();
    }
}

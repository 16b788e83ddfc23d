using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech;

/// <summary>
/// Bidirectional multi-head self-attention with rotary position embedding (rotate_half convention, applied to q and k)
/// and biases on all projections; padded keys are masked out.
/// </summary>
public sealed class RotarySelfAttention : nn.Module
{
    readonly int _heads, _headDim;
#pragma warning disable IDE1006 // checkpoint key names
    /// <summary>Query projection [d, d].</summary>
    public readonly Linear q_proj;
    /// <summary>Key projection [d, d].</summary>
    public readonly Linear k_proj;
    /// <summary>Value projection [d, d].</summary>
    public readonly Linear v_proj;
    /// <summary>Output projection [d, d].</summary>
    public readonly Linear o_proj;
#pragma warning restore IDE1006

    /// <summary>Creates the attention (weights uninitialised).</summary>
    public RotarySelfAttention(int dim, int heads, Device? device, ScalarType dtype) : base("RotarySelfAttention")
    {
        _heads = heads; _headDim = dim / heads;
        q_proj = Layers.Linear(dim, dim, true, device, dtype);
        k_proj = Layers.Linear(dim, dim, true, device, dtype);
        v_proj = Layers.Linear(dim, dim, true, device, dtype);
        o_proj = Layers.Linear(dim, dim, true, device, dtype);
        RegisterComponents();
    }

    /// <summary>
    /// x [B, T, d]; cos/sin [1, 1, T, head_dim] (f32); keyValid [B, 1, 1, T] bool (true = real frame) or null.
    /// Returns [B, T, d].
    /// </summary>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? keyValid)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], t = x.shape[1];
        var q = q_proj.forward(x).view(b, t, _heads, _headDim).transpose(1, 2); // [B, H, T, hd]
        var k = k_proj.forward(x).view(b, t, _heads, _headDim).transpose(1, 2);
        var v = v_proj.forward(x).view(b, t, _heads, _headDim).transpose(1, 2);
        q = RotaryEmbedding.Apply(q, cos, sin);
        k = RotaryEmbedding.Apply(k, cos, sin);
        var o = nn.functional.scaled_dot_product_attention(q, k, v, keyValid); // [B, H, T, hd]
        return o_proj.forward(o.transpose(1, 2).reshape(b, t, _heads * _headDim)).MoveToOuterDisposeScope();
    }
}

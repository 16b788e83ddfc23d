using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision;

/// <summary>Multi-head self-attention of the image encoder: no biases, no rotary, scale 1/√head_dim.</summary>
public sealed class VisionAttention : nn.Module
{
    readonly int _heads, _headDim;
#pragma warning disable IDE1006
    /// <summary>Query projection.</summary>
    public readonly Linear q_proj;
    /// <summary>Key projection.</summary>
    public readonly Linear k_proj;
    /// <summary>Value projection.</summary>
    public readonly Linear v_proj;
    /// <summary>Output projection.</summary>
    public readonly Linear o_proj;
#pragma warning restore IDE1006

    /// <summary>Creates the attention (weights uninitialised).</summary>
    public VisionAttention(VisionConfig c, Device? device, ScalarType dtype) : base("VisionAttention")
    {
        _heads = c.AttentionHeads; _headDim = c.HeadDim;
        q_proj = Layers.Linear(c.HiddenSize, c.HiddenSize, false, device, dtype);
        k_proj = Layers.Linear(c.HiddenSize, c.HiddenSize, false, device, dtype);
        v_proj = Layers.Linear(c.HiddenSize, c.HiddenSize, false, device, dtype);
        o_proj = Layers.Linear(c.HiddenSize, c.HiddenSize, false, device, dtype);
        RegisterComponents();
    }

    /// <summary>x [M, L, D], mask [M, 1, L, L] bool (true = attend) → [M, L, D].</summary>
    public Tensor Forward(Tensor x, Tensor mask)
    {
        using var scope = NewDisposeScope();
        long m = x.shape[0], l = x.shape[1];
        var q = q_proj.forward(x).view(m, l, _heads, _headDim).transpose(1, 2);
        var k = k_proj.forward(x).view(m, l, _heads, _headDim).transpose(1, 2);
        var v = v_proj.forward(x).view(m, l, _heads, _headDim).transpose(1, 2);
        var o = nn.functional.scaled_dot_product_attention(q, k, v, mask);
        return o_proj.forward(o.transpose(1, 2).reshape(m, l, _heads * _headDim)).MoveToOuterDisposeScope();
    }
}

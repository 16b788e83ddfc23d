using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision;

/// <summary>
/// Pre-LN encoder block: <c>x + g_a·Attn(LN(x))</c>, then <c>x + g_f·MLP(LN(x))</c>, where the gates are
/// <c>tanh(gate_attn)</c>, <c>tanh(gate_ffn)</c> in the global (gated) layers and 1 in the local ones.
/// </summary>
public sealed class VisionEncoderLayer : nn.Module
{
#pragma warning disable IDE1006
    /// <summary>Self-attention.</summary>
    public readonly VisionAttention self_attn;
    /// <summary>MLP.</summary>
    public readonly VisionMlp mlp;
    /// <summary>Norm before attention.</summary>
    public readonly VisionLayerNorm input_layernorm;
    /// <summary>Norm before the MLP.</summary>
    public readonly VisionLayerNorm post_attention_layernorm;
    /// <summary>Attention gate [1] (gated layers only).</summary>
    public readonly Parameter? gate_attn;
    /// <summary>MLP gate [1] (gated layers only).</summary>
    public readonly Parameter? gate_ffn;
#pragma warning restore IDE1006

    /// <summary>Creates the block (weights uninitialised).</summary>
    public VisionEncoderLayer(VisionConfig c, bool gated, Device? device, ScalarType dtype) : base("VisionEncoderLayer")
    {
        self_attn = new VisionAttention(c, device, dtype);
        mlp = new VisionMlp(c, device, dtype);
        input_layernorm = new VisionLayerNorm(c.HiddenSize, c.NormEps, device, dtype);
        post_attention_layernorm = new VisionLayerNorm(c.HiddenSize, c.NormEps, device, dtype);
        if (gated)
        {
            gate_attn = Layers.Param(new long[] { 1 }, device, dtype);
            gate_ffn = Layers.Param(new long[] { 1 }, device, dtype);
        }
        RegisterComponents();
    }

    /// <summary>x [M, L, D], mask [M, 1, L, L] → [M, L, D].</summary>
    public Tensor Forward(Tensor x, Tensor mask)
    {
        using var scope = NewDisposeScope();
        var a = self_attn.Forward(input_layernorm.forward(x), mask);
        if (gate_attn is not null) a = gate_attn.tanh() * a;
        var h = Scalars.Add(x, a);
        var f = mlp.forward(post_attention_layernorm.forward(h));
        if (gate_ffn is not null) f = gate_ffn.tanh() * f;
        return Scalars.Add(h, f).MoveToOuterDisposeScope();
    }
}

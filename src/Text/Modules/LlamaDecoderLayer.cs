using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>Pre-norm Llama block: <c>h = x + Attn(RMSNorm(x))</c>, <c>out = h + MLP(RMSNorm(h))</c>.</summary>
public sealed class LlamaDecoderLayer : DecoderBlock
{
#pragma warning disable IDE1006
    /// <summary>Self-attention.</summary>
    public readonly LlamaAttention self_attn;
    /// <summary>Feed-forward.</summary>
    public readonly LlamaMlp mlp;
    /// <summary>Norm before attention.</summary>
    public readonly RmsNorm input_layernorm;
    /// <summary>Norm before the MLP.</summary>
    public readonly RmsNorm post_attention_layernorm;
#pragma warning restore IDE1006

    /// <summary>Assembles a block from its parts (so frozen or adapted parts plug in).</summary>
    public LlamaDecoderLayer(LlamaAttention attention, LlamaMlp mlp, RmsNorm inputNorm, RmsNorm postAttentionNorm) : base("LlamaDecoderLayer")
    {
        self_attn = attention;
        this.mlp = mlp;
        input_layernorm = inputNorm;
        post_attention_layernorm = postAttentionNorm;
        RegisterComponents();
    }

    /// <summary>Builds a block for <paramref name="c"/> (weights uninitialised).</summary>
    public static LlamaDecoderLayer Create(LlamaConfig c, Device? device, ScalarType dtype) => new(
        new LlamaAttention(c, device, dtype),
        new LlamaMlp(c.HiddenSize, c.IntermediateSize, device, dtype),
        new RmsNorm(c.HiddenSize, c.RmsNormEps, device, dtype),
        new RmsNorm(c.HiddenSize, c.RmsNormEps, device, dtype));

    /// <inheritdoc/>
    public override Tensor Forward(Tensor x, DecoderContext ctx)
    {
        using var scope = NewDisposeScope();
        var h = Scalars.Add(x, self_attn.Forward(input_layernorm.forward(x), ctx, LayerIndex));
        var o = Scalars.Add(h, mlp.forward(post_attention_layernorm.forward(h)));
        return o.MoveToOuterDisposeScope();
    }
}

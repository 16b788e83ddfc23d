using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech;

/// <summary>The classic two-matrix Conformer feed-forward: <c>Linear(d→h) → Swish → Linear(h→d)</c>, with biases.</summary>
public sealed class SwishFeedForward : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // checkpoint key names
    /// <summary>Expansion [h, d].</summary>
    public readonly Linear linear1;
    /// <summary>Projection back [d, h].</summary>
    public readonly Linear linear2;
#pragma warning restore IDE1006

    /// <summary>Creates the feed-forward (weights uninitialised).</summary>
    public SwishFeedForward(int dim, int hidden, Device? device, ScalarType dtype) : base("SwishFeedForward")
    {
        linear1 = Layers.Linear(dim, hidden, true, device, dtype);
        linear2 = Layers.Linear(hidden, dim, true, device, dtype);
        RegisterComponents();
    }

    /// <summary>x [B, T, d] → [B, T, d].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return linear2.forward(nn.functional.silu(linear1.forward(x))).MoveToOuterDisposeScope();
    }
}

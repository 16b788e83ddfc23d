using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Video;

/// <summary>Flamingo's perceiver FFN: LayerNorm → Linear(d → m·d) → GELU (exact) → Linear(m·d → d), no biases; returns the update.</summary>
public sealed class PerceiverFeedForward : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006
    /// <summary>Norm before the FFN.</summary>
    public readonly PerceiverLayerNorm norm;
    /// <summary>Expansion [m·d, d].</summary>
    public readonly Linear fc1;
    /// <summary>Projection back [d, m·d].</summary>
    public readonly Linear fc2;
#pragma warning restore IDE1006

    /// <summary>Creates the FFN (weights uninitialised).</summary>
    public PerceiverFeedForward(TemporalAggregatorConfig c, Device? device, ScalarType dtype) : base("PerceiverFeedForward")
    {
        norm = new PerceiverLayerNorm(c.Dim, c.LayerNormEps, device, dtype);
        fc1 = Layers.Linear(c.Dim, (long)c.Dim * c.FfnMultiplier, false, device, dtype);
        fc2 = Layers.Linear((long)c.Dim * c.FfnMultiplier, c.Dim, false, device, dtype);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return fc2.forward(nn.functional.gelu(fc1.forward(norm.forward(x)))).MoveToOuterDisposeScope();
    }
}

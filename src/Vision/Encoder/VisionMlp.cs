using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision;

/// <summary>Encoder MLP: <c>fc2(GELU(fc1 x))</c> with biases and exact (erf) GELU.</summary>
public sealed class VisionMlp : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006
    /// <summary>Up projection [intermediate, hidden] with bias.</summary>
    public readonly Linear fc1;
    /// <summary>Down projection [hidden, intermediate] with bias.</summary>
    public readonly Linear fc2;
#pragma warning restore IDE1006

    /// <summary>Creates the MLP (weights uninitialised).</summary>
    public VisionMlp(VisionConfig c, Device? device, ScalarType dtype) : base("VisionMlp")
    {
        fc1 = Layers.Linear(c.HiddenSize, c.IntermediateSize, true, device, dtype);
        fc2 = Layers.Linear(c.IntermediateSize, c.HiddenSize, true, device, dtype);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return fc2.forward(nn.functional.gelu(fc1.forward(x))).MoveToOuterDisposeScope();
    }
}

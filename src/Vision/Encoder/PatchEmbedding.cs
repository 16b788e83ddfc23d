using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision;

/// <summary>Patch embedding: a bias-free convolution with kernel = stride = patch size (key <c>weight</c> [D, C, p, p]).</summary>
public sealed class PatchEmbedding : nn.Module<Tensor, Tensor>
{
    readonly int _patch;
    /// <summary>Kernel [D, C, p, p].</summary>
    public readonly Parameter weight;

    /// <summary>Creates the layer (weights uninitialised).</summary>
    public PatchEmbedding(VisionConfig c, Device? device, ScalarType dtype) : base("PatchEmbedding")
    {
        _patch = c.PatchSize;
        LibTorchBackends.DisableNnpack();
        weight = Layers.Param(new long[] { c.HiddenSize, c.NumChannels, c.PatchSize, c.PatchSize }, device, dtype);
        RegisterComponents();
    }

    /// <summary>pixels [N, C, T, T] → patches [N, grid², D] (row-major patch order).</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = nn.functional.conv2d(x, weight, null, new long[] { _patch, _patch });
        return y.flatten(2).transpose(1, 2).MoveToOuterDisposeScope();
    }
}

using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech;

/// <summary>
/// A 1-D convolution over [B, C, T] with weight [out, in/groups, kernel] and a bias (uninitialised storage, like
/// <see cref="Layers.Linear"/>).
/// </summary>
public sealed class Conv1dLayer : nn.Module<Tensor, Tensor>
{
    readonly long _stride, _padding, _groups;
#pragma warning disable IDE1006 // checkpoint key names
    /// <summary>Kernel [out, in/groups, k].</summary>
    public readonly Parameter weight;
    /// <summary>Bias [out].</summary>
    public readonly Parameter bias;
#pragma warning restore IDE1006

    /// <summary>Creates the convolution.</summary>
    public Conv1dLayer(long inChannels, long outChannels, long kernel, long stride, long padding, long groups, Device? device, ScalarType dtype)
        : base("Conv1d")
    {
        _stride = stride; _padding = padding; _groups = groups;
        LibTorchBackends.DisableNnpack();
        weight = Layers.Param(new[] { outChannels, inChannels / groups, kernel }, device, dtype);
        bias = Layers.Param(new[] { outChannels }, device, dtype);
        RegisterComponents();
    }

    /// <summary>x [B, C_in, T] → [B, C_out, T'].</summary>
    public override Tensor forward(Tensor x) =>
        nn.functional.conv1d(x, weight, bias, stride: _stride, padding: _padding, groups: _groups);
}

using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>SwiGLU feed-forward: <c>down( silu(gate x) · up x )</c> (Meta w2(silu(w1 x) · w3 x)).</summary>
public sealed class LlamaMlp : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006
    /// <summary>w1 [hidden, dim].</summary>
    public readonly Linear gate_proj;
    /// <summary>w3 [hidden, dim].</summary>
    public readonly Linear up_proj;
    /// <summary>w2 [dim, hidden].</summary>
    public readonly Linear down_proj;
#pragma warning restore IDE1006

    /// <summary>Creates the MLP (weights uninitialised).</summary>
    public LlamaMlp(long dim, long hidden, Device? device, ScalarType dtype) : base("LlamaMlp")
    {
        gate_proj = Layers.Linear(dim, hidden, false, device, dtype);
        up_proj = Layers.Linear(dim, hidden, false, device, dtype);
        down_proj = Layers.Linear(hidden, dim, false, device, dtype);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var g = nn.functional.silu(gate_proj.forward(x));
        g.mul_(up_proj.forward(x));
        return down_proj.forward(g).MoveToOuterDisposeScope();
    }
}

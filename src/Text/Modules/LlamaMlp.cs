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

    // gate and up weights are the two halves of one [2·hidden, dim] tensor (one fused projection at inference).
    readonly Tensor _gateUp;
    readonly long _hidden;

    /// <summary>Creates the MLP (weights uninitialised).</summary>
    public LlamaMlp(long dim, long hidden, Device? device, ScalarType dtype) : base("LlamaMlp")
    {
        _hidden = hidden;
        _gateUp = torch.empty(new[] { 2 * hidden, dim }, dtype: dtype, device: device).DetachFromDisposeScope();
        gate_proj = nn.Linear(new TorchSharp.Modules.Parameter(_gateUp.narrow(0, 0, hidden)));
        up_proj = nn.Linear(new TorchSharp.Modules.Parameter(_gateUp.narrow(0, hidden, hidden)));
        down_proj = Layers.Linear(hidden, dim, false, device, dtype);
        RegisterComponents();
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor g;
        if (Fused.Usable(_gateUp, gate_proj.weight))
        {
            var gu = SplitGemv.Linear(x, _gateUp);
            g = nn.functional.silu(gu.narrow(-1, 0, _hidden)).mul_(gu.narrow(-1, _hidden, _hidden));
        }
        else
        {
            g = nn.functional.silu(gate_proj.forward(x));
            g = g.mul_(up_proj.forward(x));
        }
        return (Fused.Usable(_gateUp, gate_proj.weight) ? SplitGemv.Linear(g, down_proj.weight) : down_proj.forward(g)).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) _gateUp.Dispose();
        base.Dispose(disposing);
    }
}

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
    // q8 storage: scales of the fused gate/up rows and of down_proj (null when the weights are not quantized).
    readonly Tensor? _gateUpScale, _downScale;
    readonly long _hidden;

    /// <summary>
    /// Creates the MLP (weights uninitialised). Under <see cref="QuantizationSettings.Current"/> the projections are q8:
    /// int8 weights with a <c>weight_scale</c> buffer each.
    /// </summary>
    public LlamaMlp(long dim, long hidden, Device? device, ScalarType dtype) : base("LlamaMlp")
    {
        _hidden = hidden;
        Tensor? gateUpScale = null, downScale = null;
        if (QuantizationSettings.Current is { Method: WeightQuantization.Q8 })
        {
            Tensor s;
            (_gateUp, s) = QuantizedLayers.Empty(2 * hidden, dim, device);
            gateUpScale = s;
            gate_proj = QuantizedLayers.Linear(_gateUp.narrow(0, 0, hidden), s.narrow(0, 0, hidden));
            up_proj = QuantizedLayers.Linear(_gateUp.narrow(0, hidden, hidden), s.narrow(0, hidden, hidden));
            (down_proj, downScale) = QuantizedLayers.Linear(hidden, dim, device);
        }
        else
        {
            _gateUp = torch.empty(new[] { 2 * hidden, dim }, dtype: dtype, device: device).DetachFromDisposeScope();
            gate_proj = nn.Linear(new TorchSharp.Modules.Parameter(_gateUp.narrow(0, 0, hidden)));
            up_proj = nn.Linear(new TorchSharp.Modules.Parameter(_gateUp.narrow(0, hidden, hidden)));
            down_proj = Layers.Linear(hidden, dim, false, device, dtype);
        }
        RegisterComponents();
        // Set after registration: the scales are the projections' weight_scale buffers, not buffers of this module.
        _gateUpScale = gateUpScale; _downScale = downScale;
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor g;
        bool fused = _gateUpScale is not null || Fused.Usable(_gateUp, gate_proj.weight);
        if (fused)
        {
            var gu = WeightKernels.Linear(x, _gateUp, _gateUpScale);
            g = nn.functional.silu(gu.narrow(-1, 0, _hidden)).mul_(gu.narrow(-1, _hidden, _hidden));
        }
        else
        {
            g = nn.functional.silu(gate_proj.forward(x));
            g = g.mul_(up_proj.forward(x));
        }
        return (fused ? WeightKernels.Linear(g, down_proj.weight!, _downScale) : down_proj.forward(g)).MoveToOuterDisposeScope();
    }

    // For the single-row decode step (SingleRowDecoder): the fused gate/up weight, its q8 scales and down_proj's.
    internal long Hidden => _hidden;
    internal Tensor FusedGateUp => _gateUp;
    internal Tensor? FusedGateUpScale => _gateUpScale;
    internal Tensor? DownScale => _downScale;
    internal bool FusedUsable => _gateUpScale is not null || Fused.Usable(_gateUp, gate_proj.weight);

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) { _gateUp.Dispose(); _gateUpScale?.Dispose(); }
        base.Dispose(disposing);
    }
}

using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// AdamW (Loshchilov &amp; Hutter; PyTorch's update order): <c>p ← p·(1 − lr·wd)</c> for decayed parameters, then
/// <c>m ← β1·m + (1−β1)·g</c>, <c>v ← β2·v + (1−β2)·g²</c>,
/// <c>p ← p − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε)</c>. Moments are f32 and kept per parameter name; a parameter
/// without a gradient in a step is left alone and its step count does not advance (as in PyTorch).
/// </summary>
public sealed class AdamW : IDisposable
{
    sealed class Slot
    {
        public required string Name;
        public required Tensor Param;
        public required bool Decay;
        public Tensor? M, V;
        public long Step;
    }

    readonly List<Slot> _slots;
    readonly double _b1, _b2, _wd;
    // The constant coefficients as scalars held for the optimizer's life (see Text.Scalars): made once, not per update.
    readonly Scalar _b1S, _b2S, _oneMinusB1, _oneMinusB2, _epsS;

    /// <summary>Creates the optimizer over (name, parameter, decay?) entries.</summary>
    public AdamW(IEnumerable<(string Name, Tensor Param, bool Decay)> parameters, double beta1 = 0.9, double beta2 = 0.95, double eps = 1e-8, double weightDecay = 0.1)
    {
        _slots = parameters.Select(p => new Slot { Name = p.Name, Param = p.Param, Decay = p.Decay }).ToList();
        _b1 = beta1; _b2 = beta2; _wd = weightDecay;
        _b1S = beta1.ToScalar(); _b2S = beta2.ToScalar(); _oneMinusB1 = (1 - beta1).ToScalar(); _oneMinusB2 = (1 - beta2).ToScalar(); _epsS = eps.ToScalar();
    }

    /// <summary>
    /// The parameter groups of the Llama recipes: weight decay on matrices only — not on norms, biases, tanh gates or
    /// embeddings (any 1-D parameter is treated as a norm/bias/gate).
    /// </summary>
    public static bool DecaysByName(string name, Tensor p)
    {
        if (p.dim() <= 1) return false;
        string lower = name.ToLowerInvariant();
        return !(lower.Contains("norm") || lower.EndsWith(".bias", StringComparison.Ordinal) || lower.Contains("gate") && !lower.Contains("gate_proj")
                 || lower.Contains("embed"));
    }

    /// <summary>Names of the parameters this optimizer updates, with whether each is decayed.</summary>
    public IReadOnlyList<(string Name, bool Decay)> Groups => _slots.Select(s => (s.Name, s.Decay)).ToList();

    /// <summary>Names that currently hold optimizer state (moments).</summary>
    public IReadOnlyCollection<string> StateNames => _slots.Where(s => s.M is not null).Select(s => s.Name).ToList();

    /// <summary>
    /// Optimizer-state sharding (ZeRO stage 1): when set, only the parameters at the slot indices it accepts are
    /// updated here and hold moments; the caller broadcasts each updated parameter from its owner.
    /// </summary>
    public Func<int, bool>? Owns { get; set; }

    /// <summary>The updated parameters in slot order (the order <see cref="Owns"/> indexes).</summary>
    public IReadOnlyList<Tensor> Parameters => _slots.Select(s => s.Param).ToList();

    /// <summary>Applies one update with learning rate <paramref name="lr"/> to every (owned) parameter that has a gradient.</summary>
    public void Step(double lr)
    {
        using var noGrad = torch.no_grad();
        for (int i = 0; i < _slots.Count; i++)
        {
            var s = _slots[i];
            if (Owns is not null && !Owns(i)) continue;
            var g = s.Param.grad;
            if (g is null) continue;
            using var scope = NewDisposeScope();
            s.M ??= torch.zeros(s.Param.shape, ScalarType.Float32, s.Param.device).MoveToOuterDisposeScope();
            s.V ??= torch.zeros(s.Param.shape, ScalarType.Float32, s.Param.device).MoveToOuterDisposeScope();
            s.Step++;
            var g32 = g.dtype == ScalarType.Float32 ? g : g.to_type(ScalarType.Float32);
            double bc1 = 1 - Math.Pow(_b1, s.Step), bc2 = 1 - Math.Pow(_b2, s.Step);
            // Scalars held for the whole update (see Text.Scalars: temporaries can be freed mid-call by another thread's GC).
            using Scalar decay = (1 - lr * _wd).ToScalar(), sqrtBc2 = Math.Sqrt(bc2).ToScalar(), stepSize = (-lr / bc1).ToScalar();
            if (s.Decay && _wd != 0) s.Param.mul_(decay);
            s.M.mul_(_b1S).add_(g32, alpha: _oneMinusB1);
            s.V.mul_(_b2S).addcmul_(g32, g32, value: _oneMinusB2);
            var denom = s.V.sqrt().div_(sqrtBc2).add_(_epsS, Text.Scalars.One);
            if (s.Param.dtype == ScalarType.Float32) s.Param.addcdiv_(s.M, denom, value: stepSize);
            else s.Param.copy_(s.Param.to_type(ScalarType.Float32).addcdiv_(s.M, denom, value: stepSize));
        }
    }

    /// <summary>Moments as tensors named <c>{param}.exp_avg</c> / <c>{param}.exp_avg_sq</c> (only parameters with state).</summary>
    public IEnumerable<KeyValuePair<string, Tensor>> StateTensors()
    {
        foreach (var s in _slots.Where(s => s.M is not null))
        {
            yield return new(s.Name + ".exp_avg", s.M!);
            yield return new(s.Name + ".exp_avg_sq", s.V!);
        }
    }

    /// <summary>Per-parameter step counts (for checkpoints).</summary>
    public Dictionary<string, long> StepCounts() => _slots.Where(s => s.M is not null).ToDictionary(s => s.Name, s => s.Step);

    /// <summary>Restores moments and step counts written by <see cref="StateTensors"/>/<see cref="StepCounts"/>.</summary>
    public void LoadState(Func<string, Tensor?> read, IReadOnlyDictionary<string, long> steps)
    {
        foreach (var s in _slots)
        {
            if (!steps.TryGetValue(s.Name, out long step)) continue;
            var m = read(s.Name + ".exp_avg") ?? throw new Text.CheckpointFormatException($"optimizer state: '{s.Name}.exp_avg' missing.");
            var v = read(s.Name + ".exp_avg_sq") ?? throw new Text.CheckpointFormatException($"optimizer state: '{s.Name}.exp_avg_sq' missing.");
            s.M?.Dispose(); s.V?.Dispose();
            s.M = m.to(ScalarType.Float32, s.Param.device);
            s.V = v.to(ScalarType.Float32, s.Param.device);
            if (!ReferenceEquals(s.M, m)) m.Dispose();
            if (!ReferenceEquals(s.V, v)) v.Dispose();
            s.Step = step;
        }
    }

    /// <summary>
    /// Gives every rank the full state of a sharded optimizer (before a checkpoint is written): each slot's moments and
    /// step count come from the rank that owns it.
    /// </summary>
    public void GatherSharded(Distributed.ICollectives c, Func<int, int> ownerOf)
    {
        for (int i = 0; i < _slots.Count; i++)
        {
            var s = _slots[i];
            int owner = ownerOf(i);
            bool mine = owner == c.Rank;
            if (c.AllReduceSum(mine && s.M is not null ? 1 : 0) == 0) continue;
            if (!mine)
            {
                s.M ??= torch.zeros(s.Param.shape, ScalarType.Float32, s.Param.device);
                s.V ??= torch.zeros(s.Param.shape, ScalarType.Float32, s.Param.device);
            }
            c.Broadcast(s.M!, owner);
            c.Broadcast(s.V!, owner);
            s.Step = (long)c.AllReduceSum(mine ? s.Step : 0);
        }
    }

    /// <summary>Frees the moments of slots this rank does not own (after a gather or a full load).</summary>
    public void DropUnowned()
    {
        if (Owns is null) return;
        for (int i = 0; i < _slots.Count; i++)
            if (!Owns(i)) { _slots[i].M?.Dispose(); _slots[i].V?.Dispose(); _slots[i].M = _slots[i].V = null; }
    }

    /// <summary>Frees the moments.</summary>
    public void Dispose()
    {
        foreach (var s in _slots) { s.M?.Dispose(); s.V?.Dispose(); s.M = s.V = null; }
        foreach (var c in new[] { _b1S, _b2S, _oneMinusB1, _oneMinusB2, _epsS }) c.Dispose();
    }
}

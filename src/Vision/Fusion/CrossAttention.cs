using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision;

/// <summary>
/// Grouped-query cross-attention from text to image states (HF <c>MllamaTextCrossAttention</c>): no biases, no rotary,
/// RMSNorm per head on queries and keys.
/// </summary>
public sealed class CrossAttention : nn.Module
{
    readonly int _heads, _kvHeads, _headDim;
    // q8 scales of q/k/v/o (null when the weights are not quantized).
    readonly Tensor? _qScale, _kScale, _vScale, _oScale;
#pragma warning disable IDE1006
    /// <summary>Query projection [heads·hd, D].</summary>
    public readonly Linear q_proj;
    /// <summary>Key projection [kv·hd, D].</summary>
    public readonly Linear k_proj;
    /// <summary>Value projection [kv·hd, D].</summary>
    public readonly Linear v_proj;
    /// <summary>Output projection [D, heads·hd].</summary>
    public readonly Linear o_proj;
    /// <summary>Per-head query norm [hd].</summary>
    public readonly RmsNorm q_norm;
    /// <summary>Per-head key norm [hd].</summary>
    public readonly RmsNorm k_norm;
#pragma warning restore IDE1006

    /// <summary>
    /// Creates the attention (weights uninitialised; norms 1). Under <see cref="QuantizationSettings.Current"/> the four
    /// projections are q8 (int8 weights with a <c>weight_scale</c> buffer each).
    /// </summary>
    public CrossAttention(LlamaConfig c, Device? device, ScalarType dtype) : base("CrossAttention")
    {
        _heads = c.NumHeads; _kvHeads = c.NumKvHeads; _headDim = c.HeadDim;
        Tensor? qs = null, ks = null, vs = null, os = null;
        if (QuantizationSettings.Current is { Method: WeightQuantization.Q8 })
        {
            (q_proj, qs) = QuantizedLayers.Linear(c.HiddenSize, c.NumHeads * c.HeadDim, device);
            (k_proj, ks) = QuantizedLayers.Linear(c.HiddenSize, c.NumKvHeads * c.HeadDim, device);
            (v_proj, vs) = QuantizedLayers.Linear(c.HiddenSize, c.NumKvHeads * c.HeadDim, device);
            (o_proj, os) = QuantizedLayers.Linear(c.NumHeads * c.HeadDim, c.HiddenSize, device);
        }
        else
        {
            q_proj = Layers.Linear(c.HiddenSize, c.NumHeads * c.HeadDim, false, device, dtype);
            k_proj = Layers.Linear(c.HiddenSize, c.NumKvHeads * c.HeadDim, false, device, dtype);
            v_proj = Layers.Linear(c.HiddenSize, c.NumKvHeads * c.HeadDim, false, device, dtype);
            o_proj = Layers.Linear(c.NumHeads * c.HeadDim, c.HiddenSize, false, device, dtype);
        }
        q_norm = new RmsNorm(c.HeadDim, c.RmsNormEps, device, dtype);
        k_norm = new RmsNorm(c.HeadDim, c.RmsNormEps, device, dtype);
        RegisterComponents();
        // Set after registration: the scales are the projections' weight_scale buffers, not buffers of this module.
        _qScale = qs; _kScale = ks; _vScale = vs; _oScale = os;
    }

    /// <summary>Keys and values of image states [B, S, D] → ([B, kv, S, hd] normed keys, [B, kv, S, hd] values).</summary>
    public (Tensor K, Tensor V) KeyValues(Tensor vision)
    {
        using var scope = NewDisposeScope();
        long b = vision.shape[0], s = vision.shape[1];
        var k = k_norm.forward(QuantizedLayers.Forward(k_proj, vision, _kScale).view(b, s, _kvHeads, _headDim).transpose(1, 2));
        var v = QuantizedLayers.Forward(v_proj, vision, _vScale).view(b, s, _kvHeads, _headDim).transpose(1, 2).contiguous();
        return (k.MoveToOuterDisposeScope(), v.MoveToOuterDisposeScope());
    }

    /// <summary>x [B, T, D] attends to k/v [B, kv, S, hd] under the folded mask [B, 1, n_rep·T, S] → [B, T, D].</summary>
    public Tensor Forward(Tensor x, Tensor k, Tensor v, Tensor mask)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], t = x.shape[1];
        var q = q_norm.forward(QuantizedLayers.Forward(q_proj, x, _qScale).view(b, t, _heads, _headDim).transpose(1, 2));  // [B, H, T, hd]
        var o = LlamaAttention.Attend(q, k, v, mask, _kvHeads);
        return QuantizedLayers.Forward(o_proj, o.transpose(1, 2).reshape(b, t, _heads * _headDim), _oScale).MoveToOuterDisposeScope();
    }
}

using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech;

/// <summary>
/// The Llama 3 speech encoder (Llama 3 paper §8.2): per-bin feature normalisation, stride-4 frame stacking
/// (frame-major, 80 → 320, the last group zero-padded so T₄₀ = ⌈T/4⌉), a linear projection to the model width, and
/// Conformer layers with rotary bidirectional attention (positions from 0 per utterance). Padding is masked in
/// attention and zeroed before every convolution. Checkpoint keys: <c>speech_model.encoder.</c> + the names below (see
/// <c>CHECKPOINT_KEYS.md</c>).
/// </summary>
public sealed class ConformerEncoder : nn.Module
{
#pragma warning disable IDE1006 // checkpoint key names
    /// <summary>Per-bin input normalisation (frozen statistics).</summary>
    public readonly FeatureNormalizer feature_norm;
    /// <summary>Projection of stacked frames [dim, 320].</summary>
    public readonly Linear input_proj;
    /// <summary>The Conformer layers.</summary>
    public readonly ModuleList<ConformerLayer> layers;
#pragma warning restore IDE1006

    readonly RotaryEmbedding _rotary;

    /// <summary>The configuration.</summary>
    public ConformerConfig Config { get; }

    /// <summary>Builds the encoder with uninitialised weights (use the meta device to count parameters).</summary>
    public ConformerEncoder(ConformerConfig config, Device? device = null, ScalarType dtype = ScalarType.Float32) : base("ConformerEncoder")
    {
        Config = config.Validate();
        feature_norm = new FeatureNormalizer(config.MelBins, device);
        input_proj = Layers.Linear(config.StackedDim, config.Dim, true, device, dtype);
        layers = new ModuleList<ConformerLayer>();
        for (int i = 0; i < config.NumLayers; i++) layers.Add(new ConformerLayer(config, device, dtype));
        _rotary = new RotaryEmbedding(config.HeadDim, config.RopeTheta, null, config.MaxFrames);
        RegisterComponents();
    }

    /// <summary>Initialises weights from <paramref name="seed"/> (N(0, std²), norms 1, biases 0, feature statistics identity).</summary>
    public ConformerEncoder InitializeWeights(long seed, double std = 0.02)
    {
        WeightInit.Apply(this, seed, std, (name, _) => name.StartsWith("feature_norm.", StringComparison.Ordinal));
        feature_norm.Reset();
        return this;
    }

    /// <summary>Total parameter count (works on the meta device).</summary>
    public long ParameterCount() => parameters().Sum(p => p.numel());

    /// <summary>
    /// Log-mel features [B, T, 80] with frame counts [B] → hidden states [B, ⌈T/4⌉, dim] (padding frames zero) and
    /// encoder frame counts [B]. <paramref name="cancel"/> is checked before each layer (an
    /// <see cref="OperationCanceledException"/> then ends the pass).
    /// </summary>
    public (Tensor Hidden, Tensor Lengths) Forward(Tensor features, Tensor lengths, CancellationToken cancel = default)
    {
        using var scope = NewDisposeScope();
        var (h, l) = ForwardNormalized(feature_norm.forward(features), lengths, cancel);
        return (h.MoveToOuterDisposeScope(), l.MoveToOuterDisposeScope());
    }

    /// <summary>As <see cref="Forward"/> for features that are already normalised (BEST-RQ masks them first).</summary>
    public (Tensor Hidden, Tensor Lengths) ForwardNormalized(Tensor normalized, Tensor lengths, CancellationToken cancel = default)
    {
        using var scope = NewDisposeScope();
        var device = input_proj.weight.device;
        var dtype = input_proj.weight.dtype;
        long b = normalized.shape[0], t = normalized.shape[1];
        if (normalized.dim() != 3 || normalized.shape[2] != Config.MelBins)
            throw new ArgumentException($"features must be [B, T, {Config.MelBins}], got [{string.Join(", ", normalized.shape)}].");
        lengths = lengths.to(ScalarType.Int64, device);
        var x = normalized.to(dtype, device) * SequenceMask.Valid(lengths, t, device).unsqueeze(-1).to(dtype);
        long t4 = Config.OutputFrames(t);
        if (t4 * Config.StackFrames != t) x = nn.functional.pad(x, new long[] { 0, 0, 0, t4 * Config.StackFrames - t });
        x = input_proj.forward(x.reshape(b, t4, Config.StackedDim));          // [B, T4, d], frames stacked frame-major
        var len4 = SequenceMask.CeilDiv(lengths, Config.StackFrames);
        var validBool = SequenceMask.Valid(len4, t4, device);                  // [B, T4]
        var valid = validBool.unsqueeze(-1).to(dtype);                         // [B, T4, 1]
        // Without padding the masks change nothing; leaving them out lets attention take its fastest kernel.
        bool padded = len4.min().item<long>() < t4;
        var keyValid = padded ? validBool.view(b, 1, 1, t4) : null;
        var (cos, sin) = _rotary.Tables(Scalars.Arange(0, t4, device).unsqueeze(0), (int)Math.Max(0, t4 - 1));
        foreach (var layer in layers)
        {
            cancel.ThrowIfCancellationRequested();
            x = layer.Forward(x, cos, sin, keyValid, padded ? valid : null);
        }
        return ((padded ? x * valid : x).MoveToOuterDisposeScope(), len4.MoveToOuterDisposeScope());
    }

    /// <summary>Disposes weights and rotary tables.</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing) _rotary.Dispose();
        base.Dispose(disposing);
    }
}

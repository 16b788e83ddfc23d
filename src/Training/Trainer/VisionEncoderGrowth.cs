using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>How to enlarge a trained image encoder (see <see cref="VisionEncoderGrowth"/>).</summary>
public sealed record VisionGrowthOptions
{
    /// <summary>Encoder width multiplier (hidden size and attention heads; per-head width stays). 1 keeps the width.</summary>
    public int WidthFactor { get; init; } = 1;
    /// <summary>MLP hidden size multiplier, on top of the width (the new size is intermediate · this). 1 keeps it.</summary>
    public int MlpFactor { get; init; } = 1;
    /// <summary>Gated global layers appended after the existing ones, their tanh gates at zero (so each starts as the identity).</summary>
    public int AddGlobalLayers { get; init; }
    /// <summary>
    /// Local (ungated) encoder layers appended after the existing ones, before the post-tile stage. Each starts as the
    /// identity through zero output projections (attention <c>o_proj</c>, MLP <c>fc2</c> weight and bias), which learn at
    /// once because their gradient does not pass through them. The multi-layer features keep their indices, so the
    /// projector's input is unchanged.
    /// </summary>
    public int AddLocalLayers { get; init; }
    /// <summary>
    /// Gated cross-attention layers appended at the end of the decoder (after its last layer, so their queries see the
    /// whole text so far), tanh gates at zero (so each starts as the identity).
    /// </summary>
    public int AddCrossAttentionLayers { get; init; }
    /// <summary>
    /// Relative Gaussian noise added to every widened tensor (σ = this · the tensor's standard deviation), so that the
    /// copies of a channel can grow apart in training; 0 gives a model that computes exactly what the source did.
    /// </summary>
    public double Noise { get; init; } = 0.01;
    /// <summary>Seed of the new layers' weights and of the noise.</summary>
    public long Seed { get; init; } = 1;
    /// <summary>
    /// 0 (default): gates as they are. Otherwise a tanh-gate magnitude in (0, 1): every gated branch whose |tanh(gate)| is
    /// below it (the encoder's global layers, attention and MLP; the decoder's cross-attention blocks, attention and MLP)
    /// gets its gate set so that |tanh(gate)| equals it, and the branch's output projection is scaled by
    /// old tanh / new tanh, so that the model computes what it did. A branch whose gate stays near zero in training gets
    /// almost no gradient into its weights (they are multiplied by the gate) and its gate almost none either (the branch's
    /// output is unlearnt noise), so it stays shut; opened this way its output projection learns at once. Added layers
    /// start with that gate and a zero output projection.
    /// </summary>
    public double OpenGates { get; init; }
}

/// <summary>
/// Function-preserving growth of a trained image encoder (Net2Net-style), so that a small model that has learnt can get
/// more capacity without starting again. Widening copies every channel <c>k</c> times (channel <c>j</c> of the new encoder
/// is channel <c>j mod D</c> of the old one) and divides the weights that read the copies by <c>k</c>: the mean and
/// variance of a LayerNorm over the copies are those over the originals, the attention heads are copied whole (per-head
/// width and scale unchanged), so every token state is the old one repeated. The projector reads the repeated features
/// with its columns divided likewise. Added local layers start with zero output projections, added global layers and added decoder cross-attention layers start with zero tanh
/// gates, the identity. The rest of the text decoder and its cross-attention layers are copied unchanged.
/// </summary>
public static class VisionEncoderGrowth
{
    /// <summary>The encoder shape after growth (validated).</summary>
    public static VisionLanguageConfig GrownConfig(VisionLanguageConfig source, VisionGrowthOptions options)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(options);
        if (options.WidthFactor < 1 || options.WidthFactor > 16) throw new ArgumentOutOfRangeException(nameof(options), $"width factor {options.WidthFactor} must be in 1..16.");
        if (options.MlpFactor < 1 || options.MlpFactor > 16) throw new ArgumentOutOfRangeException(nameof(options), $"MLP factor {options.MlpFactor} must be in 1..16.");
        if (options.AddGlobalLayers < 0 || options.AddGlobalLayers > 64) throw new ArgumentOutOfRangeException(nameof(options), $"added global layers {options.AddGlobalLayers} must be in 0..64.");
        if (options.AddLocalLayers < 0 || options.AddLocalLayers > 64) throw new ArgumentOutOfRangeException(nameof(options), $"added local layers {options.AddLocalLayers} must be in 0..64.");
        if (options.AddCrossAttentionLayers < 0 || options.AddCrossAttentionLayers > 64) throw new ArgumentOutOfRangeException(nameof(options), $"added cross-attention layers {options.AddCrossAttentionLayers} must be in 0..64.");
        if (!double.IsFinite(options.Noise) || options.Noise < 0 || options.Noise > 1) throw new ArgumentOutOfRangeException(nameof(options), $"noise {options.Noise} must be in [0, 1].");
        if (!double.IsFinite(options.OpenGates) || options.OpenGates < 0 || options.OpenGates > 0.99) throw new ArgumentOutOfRangeException(nameof(options), $"open-gates magnitude {options.OpenGates} must be 0 (off) or in (0, 0.99].");
        if (options.WidthFactor == 1 && options.MlpFactor == 1 && options.AddGlobalLayers == 0 && options.AddLocalLayers == 0 && options.AddCrossAttentionLayers == 0 && options.OpenGates == 0)
            throw new ArgumentOutOfRangeException(nameof(options), "nothing to grow: width factor 1, MLP factor 1, no added layers, gates left as they are.");
        var v = source.Vision;
        var grown = v with
        {
            HiddenSize = v.HiddenSize * options.WidthFactor,
            AttentionHeads = v.AttentionHeads * options.WidthFactor,
            IntermediateSize = v.IntermediateSize * options.WidthFactor * options.MlpFactor,
            NumGlobalLayers = v.NumGlobalLayers + options.AddGlobalLayers,
            NumHiddenLayers = v.NumHiddenLayers + options.AddLocalLayers,
        };
        int n = source.Text.NumLayers, add = options.AddCrossAttentionLayers;
        return (source with
        {
            Vision = grown.Validate("grown vision_config"),
            Text = source.Text with { NumLayers = n + add },
            CrossAttentionLayers = source.CrossAttentionLayers.Concat(Enumerable.Range(n, add)).ToArray(),
        }).Validate("grown config");
    }

    /// <summary>
    /// A new model (same device and dtype as <paramref name="source"/>) whose encoder is grown by <paramref name="options"/>;
    /// with <see cref="VisionGrowthOptions.Noise"/> 0 its logits equal the source's up to rounding.
    /// </summary>
    public static VisionLanguageModel Grow(VisionLanguageModel source, VisionGrowthOptions options)
    {
        ArgumentNullException.ThrowIfNull(source);
        var cfg = GrownConfig(source.Config, options);
        var old = source.Config.Vision;
        int f = options.WidthFactor, mf = f * options.MlpFactor;
        var model = VisionLanguageModel.Create(cfg, source.Device, source.DType).InitializeWeights(options.Seed, cfg.Vision.InitializerRange);
        try
        {
            var src = source.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            using var gen = new Generator((ulong)options.Seed, source.Device);
            using var noGrad = no_grad();
            foreach (var (name, dst) in model.named_parameters())
            {
                using var scope = NewDisposeScope();
                if (!src.TryGetValue(name, out var s))
                {
                    if (IsAddedLayer(name, "vision_model.transformer.layers.", old.NumHiddenLayers))
                    {
                        if (LocalOutputs.Any(o => name.EndsWith("." + o, StringComparison.Ordinal))) dst.zero_();
                        continue;   // a new local layer: random readers, zero output projections (the identity)
                    }
                    if (!IsAddedLayer(name, "vision_model.global_transformer.layers.", old.NumGlobalLayers)
                        && !IsAddedLayer(name, "language_model.model.layers.", source.Config.Text.NumLayers))
                        throw new CheckpointFormatException($"growing the model: the grown model has {name}, which the source lacks.");
                    continue;   // a new global or cross-attention layer: random weights, zero gates (InitializeWeights)
                }
                var grown = GrowTensor(name, s, old, f, mf);
                if (!grown.shape.SequenceEqual(dst.shape))
                    throw new CheckpointFormatException($"growing the encoder: {name} became [{string.Join(", ", grown.shape)}], the grown model needs [{string.Join(", ", dst.shape)}].");
                if (options.Noise > 0 && (f > 1 || options.MlpFactor > 1) && IsWidened(name) && grown.numel() > 1)
                {
                    using var sigma = (options.Noise * grown.std().ToDouble()).ToScalar();
                    grown = grown.add(randn(grown.shape, grown.dtype, grown.device, generator: gen), sigma);
                }
                dst.copy_(grown);
            }
            if (options.OpenGates > 0) OpenGatedBranches(model, options.OpenGates);
            model.Tokenizer = source.Tokenizer;
            model.PromptFormat = source.PromptFormat;
            model.Alpha = source.Alpha;
            model.HfCompatibleCrossAttention = source.HfCompatibleCrossAttention;
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The output projections of a local layer's two branches, zeroed in an added one.</summary>
    static readonly string[] LocalOutputs = { "self_attn.o_proj.weight", "mlp.fc2.weight", "mlp.fc2.bias" };

    /// <summary>The gated branches: gate name suffix → the output projections (weight, bias) that the gate multiplies.</summary>
    static readonly (string Gate, string[] Outputs)[] GatedBranches =
    {
        ("gate_attn", new[] { "self_attn.o_proj.weight" }),
        ("gate_ffn", new[] { "mlp.fc2.weight", "mlp.fc2.bias" }),
        ("cross_attn_attn_gate", new[] { "cross_attn.o_proj.weight" }),
        ("cross_attn_mlp_gate", new[] { "mlp.down_proj.weight" }),
    };

    /// <summary>Sets |tanh(gate)| to at least <paramref name="magnitude"/> in every gated branch, rescaling its output projections (see <see cref="VisionGrowthOptions.OpenGates"/>).</summary>
    static void OpenGatedBranches(VisionLanguageModel model, double magnitude)
    {
        var p = model.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        double opened = Math.Atanh(magnitude);
        foreach (var (name, gate) in p)
        {
            foreach (var (suffix, outputs) in GatedBranches)
            {
                if (!name.EndsWith("." + suffix, StringComparison.Ordinal)) continue;
                string layer = name[..^suffix.Length];
                double g = gate.ToDouble(), t = Math.Tanh(g);
                if (Math.Abs(t) >= magnitude) break;
                double newGate = g < 0 ? -opened : opened;
                double scale = t / Math.Tanh(newGate);
                foreach (var o in outputs)
                {
                    if (!p.TryGetValue(layer + o, out var w)) throw new CheckpointFormatException($"opening the gate {name}: the model has no {layer + o}.");
                    using var s = scale.ToScalar();
                    w.mul_(s);
                }
                using var ng = newGate.ToScalar();
                gate.fill_(ng);
                break;
            }
        }
    }

    static bool IsAddedLayer(string name, string prefix, int oldCount)
    {
        if (!name.StartsWith(prefix, StringComparison.Ordinal)) return false;
        int dot = name.IndexOf('.', prefix.Length);
        return dot > 0 && int.TryParse(name.AsSpan(prefix.Length, dot - prefix.Length), out int i) && i >= oldCount;
    }

    /// <summary>A scalar tanh gate (embedding, attention or MLP gate): copied as it is.</summary>
    static bool IsGate(string name) =>
        name.EndsWith("gate", StringComparison.Ordinal) || name.EndsWith("gate_attn", StringComparison.Ordinal) || name.EndsWith("gate_ffn", StringComparison.Ordinal);

    static bool IsWidened(string name) =>
        (name.StartsWith("vision_model.", StringComparison.Ordinal) && !IsGate(name)) || name == "multi_modal_projector.weight";

    /// <summary>The source tensor with each grown axis re-indexed; axes that read copies are divided by their factor.</summary>
    static Tensor GrowTensor(string name, Tensor s, VisionConfig old, int f, int mf)
    {
        int d = old.HiddenSize, di = old.IntermediateSize;
        if (!name.StartsWith("vision_model.", StringComparison.Ordinal))
        {
            if (name == "multi_modal_projector.weight") return Repeat(s, 1, ProjectorColumns(old, f), f);
            return s.clone();   // projector bias, text decoder, cross-attention layers
        }
        if (IsGate(name)) return s.clone();
        if (name.EndsWith("mlp.fc1.weight", StringComparison.Ordinal))
            return Repeat(Repeat(s, 0, Cyclic(di * mf, di), 1), 1, Cyclic(d * f, d), f);
        if (name.EndsWith("mlp.fc1.bias", StringComparison.Ordinal)) return Repeat(s, 0, Cyclic(di * mf, di), 1);
        if (name.EndsWith("mlp.fc2.weight", StringComparison.Ordinal))
            return Repeat(Repeat(s, 0, Cyclic(d * f, d), 1), 1, Cyclic(di * mf, di), mf);
        if (name.Contains(".self_attn.", StringComparison.Ordinal))   // q/k/v/o [D, D], no biases
            return Repeat(Repeat(s, 0, Cyclic(d * f, d), 1), 1, Cyclic(d * f, d), f);
        if (name.EndsWith("tile_embedding.weight", StringComparison.Ordinal) || name.EndsWith("tile_positional_embedding.embedding.weight", StringComparison.Ordinal))
        {
            // [ratios, tiles · (tokens ·) D]: the hidden axis is the innermost one
            var shaped = s.reshape(s.shape[0], -1, d);
            return Repeat(shaped, 2, Cyclic(d * f, d), 1).reshape(s.shape[0], -1);
        }
        if (name.EndsWith("patch_embedding.weight", StringComparison.Ordinal)) return Repeat(s, 0, Cyclic(d * f, d), 1);
        // class embedding [D], positional embedding [tokens, D], LayerNorm weights and biases [D]
        return Repeat(s, (int)s.dim() - 1, Cyclic(d * f, d), 1);
    }

    static long[] Cyclic(int newSize, int oldSize) => Enumerable.Range(0, newSize).Select(j => (long)(j % oldSize)).ToArray();

    /// <summary>
    /// Source column of each projector input column: [global output | intermediates interleaved channel by channel],
    /// i.e. column D·f + c·n + i of the grown features is column D + (c mod D)·n + i of the old ones.
    /// </summary>
    static long[] ProjectorColumns(VisionConfig old, int f)
    {
        int d = old.HiddenSize, n = old.IntermediateLayersIndices.Count;
        var cols = new long[d * f * (1 + n)];
        for (int c = 0; c < d * f; c++)
        {
            cols[c] = c % d;
            for (int i = 0; i < n; i++) cols[d * f + c * n + i] = d + (c % d) * n + i;
        }
        return cols;
    }

    static Tensor Repeat(Tensor s, int axis, long[] sourceIndex, int divideBy)
    {
        using var idx = tensor(sourceIndex, ScalarType.Int64, s.device);
        var picked = s.index_select(axis, idx);
        if (divideBy == 1) return picked;
        using var inv = (1.0 / divideBy).ToScalar();
        return picked.mul(inv);
    }
}

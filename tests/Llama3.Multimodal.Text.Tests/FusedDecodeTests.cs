using Llama3.Multimodal.Text;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text.Tests;

/// <summary>
/// The single-row decode step run in C# (<see cref="WeightKernels.FusedDecode"/>) against the libtorch path, on random
/// models with odd widths and grouped-query ratios, over a cache that grows for many tokens.
/// </summary>
[Collection("kernels")]
public class FusedDecodeTests
{
    // hidden not a multiple of 32 or 64; n_rep 3, 1 and 8; head_dim 14, 12 and 14.
    static readonly LlamaConfig[] Configs =
    {
        new() { HiddenSize = 84, NumLayers = 2, NumHeads = 6, NumKvHeads = 2, IntermediateSize = 100, VocabSize = 300, MaxPositionEmbeddings = 256 },
        new() { HiddenSize = 60, NumLayers = 3, NumHeads = 5, NumKvHeads = 5, IntermediateSize = 71, VocabSize = 257, TieWordEmbeddings = true, MaxPositionEmbeddings = 256 },
        new()
        {
            HiddenSize = 112, NumLayers = 2, NumHeads = 8, NumKvHeads = 1, IntermediateSize = 150, VocabSize = 333,
            RopeScaling = new RopeScaling(8, 1, 4, 64), MaxPositionEmbeddings = 256,
        },
    };

    const int Steps = 40;

    /// <summary>Greedy cached decode after a 5-token prompt, with the C# decode step on or off: each step's logits.</summary>
    static (List<long> Tokens, List<Tensor> Logits) Decode(LlamaForCausalLM m, bool fused, List<long>? follow = null)
    {
        var saved = WeightKernels.FusedDecode;
        WeightKernels.FusedDecode = fused;
        try { return KernelTests.Decode(m, Steps, follow, new long[] { 1, 17, 42, 99, 250 }); }
        finally { WeightKernels.FusedDecode = saved; }
    }

    static void Compare(LlamaForCausalLM m, double tolerance, bool sameTokens, string what)
    {
        var (t0, l0) = Decode(m, fused: false);
        long before = SingleRowDecoder.Steps;
        var (t1, l1) = Decode(m, fused: true, follow: sameTokens ? null : t0);
        Assert.Equal(Steps - 1, SingleRowDecoder.Steps - before);   // every step after the prompt took the C# path
        if (sameTokens) Assert.Equal(t0, t1);
        for (int i = 0; i < l0.Count; i++)
        {
            double scale = l0[i].abs().max().item<float>();
            double err = (l1[i] - l0[i]).abs().max().item<float>();
            Assert.True(err <= tolerance * scale, $"{what} step {i}: max |Δlogit| {err:G3} against max |logit| {scale:G3}");
        }
    }

    static void Each(Action<LlamaConfig, int> body)
    {
        var saved = (WeightKernels.MinParallelBytes, SingleRowDecoder.ParallelAttentionWork);
        try
        {
            for (int split = 0; split < 2; split++)
            {
                // Second round: every product and the attention split over the pool.
                WeightKernels.MinParallelBytes = split == 0 ? saved.MinParallelBytes : 0;
                SingleRowDecoder.ParallelAttentionWork = split == 0 ? long.MaxValue : 0;
                for (int i = 0; i < Configs.Length; i++) body(Configs[i], i);
            }
        }
        finally { (WeightKernels.MinParallelBytes, SingleRowDecoder.ParallelAttentionWork) = saved; }
    }

    [Fact]
    public void F32StepMatchesTheLibtorchPath() => Each((c, i) =>
    {
        using var m = LlamaForCausalLM.Create(c).InitializeWeights(10 + i, 0.2);
        Compare(m, 1e-4, sameTokens: true, $"f32 config {i}");
    });

    [Fact]
    public void Bf16StepMatchesTheLibtorchPath() => Each((c, i) =>
    {
        using var m = LlamaForCausalLM.Create(c, CPU, ScalarType.BFloat16).InitializeWeights(10 + i, 0.2);
        // Same rounding points; only the order of the sums in norms and attention differs, which can move a bf16 value by
        // one step and the logits with it.
        Compare(m, 0.03, sameTokens: false, $"bf16 config {i}");
    });

    [Fact]
    public void Q8StepMatchesTheLibtorchPath() => Each((c, i) =>
    {
        var saved = WeightKernels.QuantizeQ8Activations;
        try
        {
            using (QuantizationSettings.Use(new QuantizationSettings(WeightQuantization.Q8)))
            {
                using var m = LlamaForCausalLM.Create(c).InitializeWeights(10 + i, 0.2);
                // f32 input rows: the products are continuous in their input, so only the order of sums differs.
                WeightKernels.QuantizeQ8Activations = false;
                Compare(m, 1e-4, sameTokens: true, $"q8, f32 input, config {i}");
                // Quantized input rows: a last-bit difference in a norm can move one input by a quantization step.
                WeightKernels.QuantizeQ8Activations = true;
                Compare(m, 0.03, sameTokens: false, $"q8 config {i}");
            }
        }
        finally { WeightKernels.QuantizeQ8Activations = saved; }
    });

    [Fact]
    public void LibtorchExactF32SettingKeepsTheLibtorchPath()
    {
        var saved = WeightKernels.F32Kernels;
        try
        {
            WeightKernels.F32Kernels = false;
            using var m = LlamaForCausalLM.Create(Configs[0]).InitializeWeights(3, 0.2);
            var (t0, l0) = Decode(m, fused: false);
            long before = SingleRowDecoder.Steps;
            var (t1, l1) = Decode(m, fused: true);
            Assert.Equal(before, SingleRowDecoder.Steps);
            Assert.Equal(t0, t1);
            for (int i = 0; i < l0.Count; i++) Assert.Equal(0f, (l0[i] - l1[i]).abs().max().item<float>());
        }
        finally { WeightKernels.F32Kernels = saved; }
    }
}

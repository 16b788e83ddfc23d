using Llama3.Multimodal.Text;
using Llama3.Multimodal.Training;
using Llama3.Multimodal.Vision;
using Llama3.Multimodal.Vision.Tests;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training.Tests;

public class GrowthTests
{
    static Tensor Logits(VisionLanguageModel m, int imageSide, int seed)
    {
        var ids = VisionPrompt.EncodeInstruct(m.Tokenizer, "What is this?", 1);
        using var batch = m.Preprocessor.Batch(new[] { (IReadOnlyList<RgbImage>)new[] { TestSupport.Scene(imageSide, imageSide, seed) } });
        using var _ = no_grad();
        using var idT = tensor(ids.Select(i => (long)i).ToArray(), new long[] { 1, ids.Count });
        return m.Forward(idT, batch);
    }

    static bool Same(Tensor a, Tensor b)
    {
        if (!a.shape.SequenceEqual(b.shape)) return false;
        using var eq = a.eq(b);
        using var all = eq.all();
        return all.item<bool>();
    }

    static double MaxRelative(Tensor a, Tensor b)
    {
        using var diff = (a - b).abs().max();
        using var scale = a.abs().max();
        return diff.ToDouble() / scale.ToDouble();
    }

    [Theory]
    [InlineData(2, 1, 0, 0, 60)]     // wider: 2 × width, 2 × heads, one tile
    [InlineData(2, 2, 1, 0, 200)]    // wider, a 4 × MLP, one more global layer; a 2 × 2-tile image
    [InlineData(1, 3, 2, 0, 200)]    // same width, 3 × MLP, two more global layers
    [InlineData(1, 1, 0, 2, 60)]     // two more decoder cross-attention layers
    [InlineData(2, 1, 1, 1, 200)]    // all at once
    public void GrownModelWithoutNoiseComputesTheSameLogits(int width, int mlp, int addGlobal, int addCross, int side)
    {
        using var m = TestSupport.Tiny(31);
        var opts = new VisionGrowthOptions { WidthFactor = width, MlpFactor = mlp, AddGlobalLayers = addGlobal, AddCrossAttentionLayers = addCross, Noise = 0, Seed = 5 };
        using var g = VisionEncoderGrowth.Grow(m, opts);
        var v = m.Config.Vision;
        Assert.Equal(v.HiddenSize * width, g.Config.Vision.HiddenSize);
        Assert.Equal(v.AttentionHeads * width, g.Config.Vision.AttentionHeads);
        Assert.Equal(v.HeadDim, g.Config.Vision.HeadDim);
        Assert.Equal(v.IntermediateSize * width * mlp, g.Config.Vision.IntermediateSize);
        Assert.Equal(v.NumGlobalLayers + addGlobal, g.Config.Vision.NumGlobalLayers);
        int n = m.Config.Text.NumLayers;
        Assert.Equal(n + addCross, g.Config.Text.NumLayers);
        Assert.Equal(m.Config.CrossAttentionLayers.Concat(Enumerable.Range(n, addCross)), g.Config.CrossAttentionLayers);
        Assert.True(g.ParameterCount() > m.ParameterCount());
        using var a = Logits(m, side, 3);
        using var b = Logits(g, side, 3);
        Assert.Equal(a.shape, b.shape);
        double rel = MaxRelative(a, b);
        Assert.True(rel < 1e-4, $"grown logits differ by {rel:G3} (relative)");
    }

    [Theory]
    [InlineData(1, 2, 200)]   // two more local layers; a 2 × 2-tile image
    [InlineData(2, 1, 60)]    // wider and one more local layer
    public void AddedLocalLayersStartAsTheIdentityAndLearn(int width, int addLocal, int side)
    {
        using var m = TestSupport.Tiny(37);
        using var g = VisionEncoderGrowth.Grow(m, new VisionGrowthOptions { WidthFactor = width, AddLocalLayers = addLocal, Noise = 0, Seed = 4 });
        int old = m.Config.Vision.NumHiddenLayers;
        Assert.Equal(old + addLocal, g.Config.Vision.NumHiddenLayers);
        Assert.Equal(m.Config.Vision.IntermediateLayersIndices, g.Config.Vision.IntermediateLayersIndices);
        Assert.Equal(m.Config.Vision.OutputDim * width, g.Config.Vision.OutputDim);
        var p = Params(g);
        string first = $"vision_model.transformer.layers.{old}.";
        foreach (var o in new[] { "self_attn.o_proj.weight", "mlp.fc2.weight", "mlp.fc2.bias" })
            using (var absMax = p[first + o].abs().max()) Assert.Equal(0.0, absMax.ToDouble());
        using (var qMax = p[first + "self_attn.q_proj.weight"].abs().max()) Assert.True(qMax.ToDouble() > 0, "the new layer's readers are zero");
        using var a = Logits(m, side, 8);
        using var b = Logits(g, side, 8);
        double rel = MaxRelative(a, b);
        Assert.True(rel < 1e-4, $"logits with added local layers differ by {rel:G3} (relative)");

        // The zero output projection learns at once: its gradient does not pass through itself.
        g.zero_grad();
        var ids = VisionPrompt.EncodeInstruct(g.Tokenizer, "What is this?", 1);
        using var batch = g.Preprocessor.Batch(new[] { (IReadOnlyList<RgbImage>)new[] { TestSupport.Scene(side, side, 2) } });
        using var idT = tensor(ids.Select(i => (long)i).ToArray(), new long[] { 1, ids.Count });
        using var logits = g.Forward(idT, batch);
        using var loss = logits.square().mean();
        loss.backward();
        using var n = p[first + "self_attn.o_proj.weight"].grad!.norm();
        Assert.True(n.ToDouble() > 0, "the added local layer's output projection gets no gradient");
    }

    [Fact]
    public void NoiseMakesTheCopiesDifferButKeepsTheFunctionClose()
    {
        using var m = TestSupport.Tiny(32);
        using var g = VisionEncoderGrowth.Grow(m, new VisionGrowthOptions { WidthFactor = 2, Noise = 0.01, Seed = 9 });
        int d = m.Config.Vision.HiddenSize;
        var q = g.named_parameters().Single(p => p.name == "vision_model.transformer.layers.0.self_attn.q_proj.weight").parameter;
        using var top = q.narrow(0, 0, d);
        using var copy = q.narrow(0, d, d);
        Assert.False(top.allclose(copy), "the two copies of each channel are still identical: training could not separate them");
        using var a = Logits(m, 60, 4);
        using var b = Logits(g, 60, 4);
        double rel = MaxRelative(a, b);
        Assert.True(rel > 1e-7 && rel < 0.2, $"relative change {rel:G3}");
        // the decoder is copied, not perturbed
        var src = m.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in g.named_parameters().Where(p => p.name.StartsWith("language_model.", StringComparison.Ordinal)))
            Assert.True(Same(p, src[name]), name);
    }

    [Fact]
    public void GrownModelSavesAndLoadsBitExactly()
    {
        using var m = TestSupport.Tiny(33);
        using var g = VisionEncoderGrowth.Grow(m, new VisionGrowthOptions { WidthFactor = 2, AddGlobalLayers = 1, AddCrossAttentionLayers = 1, Seed = 2 });
        string dir = TestSupport.TempDir();
        g.Save(dir);
        using var back = VisionLanguageModel.FromPretrained(dir);
        Assert.Equal(g.Config, back.Config);
        var saved = g.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in back.named_parameters()) Assert.True(Same(p, saved[name]), name);
    }

    static Dictionary<string, TorchSharp.Modules.Parameter> Params(VisionLanguageModel m) => m.named_parameters().ToDictionary(p => p.name, p => p.parameter);

    /// <summary>A branch gate (HF names): the encoder's global layers' and the decoder's cross-attention blocks'.</summary>
    static bool IsBranchGate(string name) =>
        name.EndsWith(".gate_attn", StringComparison.Ordinal) || name.EndsWith(".gate_ffn", StringComparison.Ordinal)
        || name.EndsWith("_attn_gate", StringComparison.Ordinal) || name.EndsWith("_mlp_gate", StringComparison.Ordinal);

    /// <summary>Sets every branch gate to the given values in turn.</summary>
    static void SetGates(VisionLanguageModel m, params double[] values)
    {
        using var _ = no_grad();
        int i = 0;
        foreach (var (name, p) in m.named_parameters())
            if (IsBranchGate(name))
            {
                using var v = values[i++ % values.Length].ToScalar();
                p.fill_(v);
            }
    }

    [Fact]
    public void OpenedGatesComputeTheSameLogitsWithEveryGateOpen()
    {
        using var m = TestSupport.Tiny(35);
        SetGates(m, 0.1, -0.2, 0.0, 0.9);   // 0.9: |tanh| 0.72, already open
        using var g = VisionEncoderGrowth.Grow(m, new VisionGrowthOptions { OpenGates = 0.5, AddGlobalLayers = 1, Seed = 3 });
        Assert.Equal(m.Config.Vision.NumGlobalLayers + 1, g.Config.Vision.NumGlobalLayers);
        var before = Params(m);
        int opened = 0, kept = 0;
        foreach (var (name, p) in Params(g).Where(x => IsBranchGate(x.Key)))
        {
            double t = Math.Tanh(p.ToDouble());
            Assert.True(Math.Abs(t) >= 0.5 - 1e-6, $"{name}: tanh {t:G3}");
            if (before.TryGetValue(name, out var old) && Math.Abs(Math.Tanh(old.ToDouble())) >= 0.5) { Assert.True(Same(p, old), name); kept++; }
            else opened++;
        }
        Assert.True(opened > 0 && kept > 0, $"opened {opened}, kept {kept}");
        // The added layer starts as the identity through a zero output projection instead of a zero gate.
        int last = g.Config.Vision.NumGlobalLayers - 1;
        var o = Params(g)[$"vision_model.global_transformer.layers.{last}.self_attn.o_proj.weight"];
        using (var absMax = o.abs().max()) Assert.Equal(0.0, absMax.ToDouble());
        using var a = Logits(m, 200, 6);
        using var b = Logits(g, 200, 6);
        double rel = MaxRelative(a, b);
        Assert.True(rel < 1e-4, $"logits with opened gates differ by {rel:G3} (relative)");
    }

    [Fact]
    public void AShutGlobalLayerLearnsOnlyOnceItsGateIsOpened()
    {
        using var m = TestSupport.Tiny(36, gates: false);   // seeded initialisation: every gate at zero
        using (no_grad())
            foreach (var (name, p) in m.named_parameters().Where(x => x.name.StartsWith("language_model.", StringComparison.Ordinal) && x.name.Contains("_gate")))
            {
                using var v = 0.7.ToScalar();
                p.fill_(v);   // the decoder reads the image; the encoder's global layers stay shut
            }
        using var g = VisionEncoderGrowth.Grow(m, new VisionGrowthOptions { OpenGates = 0.5 });
        double GradNorm(VisionLanguageModel model)
        {
            model.zero_grad();
            var ids = VisionPrompt.EncodeInstruct(model.Tokenizer, "What is this?", 1);
            using var batch = model.Preprocessor.Batch(new[] { (IReadOnlyList<RgbImage>)new[] { TestSupport.Scene(60, 60, 2) } });
            using var idT = tensor(ids.Select(i => (long)i).ToArray(), new long[] { 1, ids.Count });
            using var logits = model.Forward(idT, batch);
            using var loss = logits.square().mean();
            loss.backward();
            var w = Params(model)["vision_model.global_transformer.layers.0.self_attn.o_proj.weight"];
            using var n = w.grad!.norm();
            return n.ToDouble();
        }
        Assert.Equal(0.0, GradNorm(m));          // multiplied by tanh(0)
        Assert.True(GradNorm(g) > 0, "the opened branch's output projection gets no gradient");
    }

    [Theory]
    [InlineData(0, 1, 0, 0.0, "width factor 0")]
    [InlineData(1, 0, 0, 0.0, "MLP factor 0")]
    [InlineData(1, 1, -1, 0.0, "added global layers -1")]
    [InlineData(1, 1, 99, 0.0, "added global layers 99")]
    [InlineData(2, 1, 0, -0.5, "noise -0.5")]
    [InlineData(1, 1, 0, 0.0, "nothing to grow")]
    [InlineData(1, 1, 0, 0.0, "added local layers -2", 0.0, -2)]
    [InlineData(1, 1, 0, 0.0, "open-gates magnitude 1.5", 1.5)]
    [InlineData(1, 1, 0, 0.0, "open-gates magnitude -0.1", -0.1)]
    public void BadOptionsAreRefusedByName(int width, int mlp, int addGlobal, double noise, string expected, double openGates = 0, int addLocal = 0)
    {
        using var m = TestSupport.Tiny(34);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() =>
            VisionEncoderGrowth.Grow(m, new VisionGrowthOptions { WidthFactor = width, MlpFactor = mlp, AddGlobalLayers = addGlobal, AddLocalLayers = addLocal, Noise = noise, OpenGates = openGates }));
        Assert.Contains(expected, e.Message);
    }
}

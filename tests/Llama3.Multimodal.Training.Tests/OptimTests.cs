using Llama3.Multimodal.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training.Tests;

public class OptimTests
{
    [Fact]
    public void CosineScheduleHitsPeakMidpointAndFloor()
    {
        var s = new LrSchedule("cosine", 1e-3, 1e-5, 10, 110);
        Assert.Equal(1e-4, s.At(0), 12);                       // first warm-up step: peak·1/10
        Assert.Equal(1e-3, s.At(9), 12);                       // warm-up end
        Assert.Equal(1e-3, s.At(10), 12);                      // cosine start
        Assert.Equal((1e-3 + 1e-5) / 2, s.At(60), 12);         // mid-cosine
        Assert.Equal(1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + Math.Cos(Math.PI * 0.25)), s.At(35), 12);
        Assert.Equal(1e-5, s.At(110), 12);                     // floor
        Assert.Equal(1e-5, s.At(500), 12);
    }

    [Fact]
    public void LinearAnnealingReachesZeroAndConstantStaysAtPeak()
    {
        var lin = new LrSchedule("linear", 2e-4, 0, 0, 100);
        Assert.Equal(2e-4, lin.At(0), 12);
        Assert.Equal(1e-4, lin.At(50), 12);
        Assert.Equal(0, lin.At(100), 12);
        var c = new LrSchedule("constant", 1e-5, 0, 4, 100);
        Assert.Equal(0.5e-5, c.At(1), 12);
        Assert.Equal(1e-5, c.At(77), 12);
    }

    [Fact]
    public void AdamWStepMatchesHandComputedUpdate()
    {
        using var p = torch.tensor(new float[] { 1.0f, -2.0f, 0.5f, 3.0f }, new long[] { 2, 2 }).requires_grad_(true);
        using var b = torch.tensor(new float[] { 0.3f, -0.1f }).requires_grad_(true);
        using var opt = new AdamW(new[] { ("w", p, true), ("bias", b, false) }, 0.9, 0.95, 1e-8, 0.1);
        float[] w0 = { 1.0f, -2.0f, 0.5f, 3.0f }, g1 = { 0.5f, -1.0f, 0.25f, 2.0f }, g2 = { -0.2f, 0.4f, 0.1f, 1.0f };
        p.grad = torch.tensor(g1, new long[] { 2, 2 });
        b.grad = torch.tensor(new float[] { 1f, 1f });
        opt.Step(0.01);
        p.grad = torch.tensor(g2, new long[] { 2, 2 });
        b.grad = null;
        opt.Step(0.02);
        // Hand computation of two AdamW steps (PyTorch's order: decay, moments, bias-corrected update).
        var got = p.detach().data<float>().ToArray();
        for (int i = 0; i < 4; i++)
        {
            double w = w0[i], m = 0, v = 0;
            double[] lrs = { 0.01, 0.02 }; float[][] gs = { g1, g2 };
            for (int t = 1; t <= 2; t++)
            {
                double g = gs[t - 1][i], lr = lrs[t - 1];
                w *= 1 - lr * 0.1;
                m = 0.9 * m + 0.1 * g; v = 0.95 * v + 0.05 * g * g;
                double mh = m / (1 - Math.Pow(0.9, t)), vh = v / (1 - Math.Pow(0.95, t));
                w -= lr * mh / (Math.Sqrt(vh) + 1e-8);
            }
            Assert.Equal(w, got[i], 5);
        }
        // The bias had a gradient only in step 1 and no decay: one plain Adam step of lr·sign(g).
        var bb = b.detach().data<float>().ToArray();
        Assert.Equal(0.3 - 0.01, bb[0], 5);
        Assert.Equal(-0.1 - 0.01, bb[1], 5);
        Assert.Equal(1, opt.StepCounts()["bias"]);
        Assert.Equal(2, opt.StepCounts()["w"]);
    }

    [Fact]
    public void NoDecayOnNormsBiasesGatesAndEmbeddings()
    {
        using var m2 = torch.zeros(4, 4); using var v1 = torch.zeros(4);
        Assert.True(AdamW.DecaysByName("model.layers.0.self_attn.q_proj.weight", m2));
        Assert.True(AdamW.DecaysByName("model.layers.0.mlp.gate_proj.weight", m2));
        Assert.False(AdamW.DecaysByName("model.layers.0.input_layernorm.weight", v1));
        Assert.False(AdamW.DecaysByName("model.norm.weight", v1));
        Assert.False(AdamW.DecaysByName("model.embed_tokens.weight", m2));
        Assert.False(AdamW.DecaysByName("vision_model.layers.0.mlp.fc1.bias", v1));
        Assert.False(AdamW.DecaysByName("cross_attn_attn_gate", v1));
        Assert.False(AdamW.DecaysByName("model.layers.3.gate_attn", m2));
    }

    [Fact]
    public void ClippingScalesGlobalNormToOne()
    {
        using var a = torch.zeros(3).requires_grad_(true);
        using var b = torch.zeros(2, 2).requires_grad_(true);
        a.grad = torch.tensor(new float[] { 3, 0, 0 });
        b.grad = torch.tensor(new float[] { 0, 4, 0, 0 }, new long[] { 2, 2 });
        double before = GradientClipping.ClipGlobalNorm(new[] { a, b }, 1.0);
        Assert.Equal(5.0, before, 6);
        double after = Math.Sqrt(a.grad!.pow(2).sum().item<float>() + b.grad!.pow(2).sum().item<float>());
        Assert.Equal(1.0, after, 5);
        Assert.Equal(0.6, a.grad![0].item<float>(), 5);
        // Below the threshold nothing changes.
        Assert.Equal(1.0, GradientClipping.ClipGlobalNorm(new[] { a, b }, 2.0), 5);
        Assert.Equal(0.6, a.grad![0].item<float>(), 5);
    }

    [Fact]
    public void BatchRampSwitchesGlobalBatchAndLength()
    {
        using var r = new TextPretrainRecipe();
        var c = r.DefaultConfig();
        Assert.Equal((4L << 20, 4096), BatchPlan.At(c, 0));
        Assert.Equal((4L << 20, 4096), BatchPlan.At(c, 251_999_999));
        Assert.Equal((8L << 20, 8192), BatchPlan.At(c, 252_000_000));
        Assert.Equal((16L << 20, 8192), BatchPlan.At(c, 3_000_000_000_000));
        Assert.Equal(1024, BatchPlan.Accumulation(c, 4L << 20, 4096));      // 4M tokens of 4096-token rows, micro 1
        Assert.Equal(1024, BatchPlan.Accumulation(c, 8L << 20, 8192));
    }
}

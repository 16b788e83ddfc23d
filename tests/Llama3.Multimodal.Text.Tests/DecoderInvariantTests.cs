using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text.Tests;

public class DecoderInvariantTests
{
    static float MaxAbs(Tensor a, Tensor b) => (a - b).abs().max().item<float>();

    [Fact]
    public void KvCacheDecodeMatchesFullForward()
    {
        using var m = TestModels.Model(TestModels.Small());
        using var _ = no_grad();
        var ids = TestModels.Ids(2, 12, 512, 3);
        var full = m.Forward(ids);
        using var cache = m.NewCache(2, 32);
        var parts = new List<Tensor> { m.Forward(ids.narrow(1, 0, 5), new ForwardOptions { Cache = cache }) };
        for (int i = 5; i < 12; i++) parts.Add(m.Forward(ids.narrow(1, i, 1), new ForwardOptions { Cache = cache }));
        var inc = cat(parts.ToArray(), 1);
        Assert.Equal(12, cache.Length);
        Assert.True(MaxAbs(full, inc) < 1e-5f, $"max diff {MaxAbs(full, inc)}");
    }

    [Fact]
    public void FusedInferenceProjectionsEqualTheSeparateOnes()
    {
        using var m = TestModels.Model(TestModels.Small());
        var ids = TestModels.Ids(2, 6, 512, 8);
        Tensor fused;
        using (no_grad()) fused = m.Forward(ids);
        var separate = m.Forward(ids).detach();      // grad enabled: the three/two parameter path
        Assert.True(MaxAbs(fused, separate) < 1e-5f);
        // Writing a parameter is seen by the fused path (they share memory).
        using (no_grad()) m.model.layers[0].named_parameters().First(p => p.name.EndsWith("k_proj.weight")).parameter.mul_(2);
        Tensor fused2;
        using (no_grad()) fused2 = m.Forward(ids);
        Assert.True(MaxAbs(fused2, m.Forward(ids).detach()) < 1e-5f);
        Assert.True(MaxAbs(fused2, fused) > 1e-4f);
    }

    [Fact]
    public void SplittingTheStackOverDevicesKeepsTheLogits()
    {
        var cfg = TestModels.Small(layers: 4);
        using var m = TestModels.Model(cfg, 5);
        string dir = TestModels.TempDir();
        m.Save(dir);
        // The placement path on this machine: every range on the CPU (on a GPU box, cuda:0, cuda:1, …).
        using var split = LlamaForCausalLM.FromPretrained(dir, devices: new[] { CPU, CPU, CPU });
        Assert.All(split.model.layers, b => Assert.NotNull(b.PlacedOn));
        var ids = TestModels.Ids(1, 8, 512, 2);
        using var _ = no_grad();
        Assert.True(MaxAbs(m.Forward(ids), split.Forward(ids)) < 1e-6f);
        using var cache = split.NewCache(1, 16);
        split.Forward(ids.narrow(1, 0, 7), new ForwardOptions { Cache = cache });
        var last = split.Forward(ids.narrow(1, 7, 1), new ForwardOptions { Cache = cache });
        Assert.True(MaxAbs(m.Forward(ids).narrow(1, 7, 1), last) < 1e-5f);
    }

    [Fact]
    public void PlacementByFreeMemoryIsContiguousAndProportional()
    {
        var a = new Device(DeviceType.CUDA, 0);
        var b = new Device(DeviceType.CUDA, 1);
        var c = new Device(DeviceType.CUDA, 2);
        string Show(IReadOnlyList<Device> p) => string.Concat(p.Select(d => d.index.ToString()));
        Assert.Equal("0000000111", Show(DevicePlacement.Proportional(new[] { a, b }, new[] { 70L << 30, 30L << 30 }, 10)));
        Assert.Equal("0000000011", Show(DevicePlacement.Proportional(new[] { a, b }, new[] { 75L, 25L }, 10)));      // 7.5/2.5: tie to the first
        Assert.Equal("00000000000000001111111122222222", Show(DevicePlacement.Proportional(new[] { a, b, c }, new[] { 2L, 1L, 1L }, 32)));
        Assert.Equal("1111", Show(DevicePlacement.Proportional(new[] { a, b }, new[] { 0L, 5L }, 4)));                  // no room: no blocks
        Assert.Throws<ArgumentException>(() => DevicePlacement.Proportional(new[] { a, b }, new[] { 0L, 0L }, 4));
        Assert.Throws<ArgumentException>(() => DevicePlacement.Proportional(new[] { a }, new[] { 1L, 2L }, 4));
        // Fewer than two CUDA devices here: nothing to split (and the reason is reported).
        if (!cuda.is_available() || cuda.device_count() < 2)
        {
            string? said = null;
            Assert.Null(DevicePlacement.Auto(32, m => said = m));
            Assert.Contains("no split", said);
        }
    }

    [Fact]
    public void APerBlockPlacementListPlacesEachBlock()
    {
        var cfg = TestModels.Small(layers: 4);
        using var m = TestModels.Model(cfg, 5);
        string dir = TestModels.TempDir();
        m.Save(dir);
        var placement = DevicePlacement.Proportional(new[] { CPU, CPU }, new[] { 3L, 1L }, 4);
        using var split = LlamaForCausalLM.FromPretrained(dir, devices: placement);
        Assert.Equal(4, split.model.layers.Count(b => b.PlacedOn is not null));
        var ids = TestModels.Ids(1, 8, 512, 2);
        using var _ = no_grad();
        Assert.True(MaxAbs(m.Forward(ids), split.Forward(ids)) < 1e-6f);
    }

    [Fact]
    public void SplitGemvEqualsOneLinear()
    {
        var g = new Generator(12, CPU);
        var w = randn(new long[] { 1001, 96 }, generator: g);
        var x = randn(new long[] { 1, 1, 96 }, generator: g);
        long saved = SplitGemv.MinBytes;
        try
        {
            SplitGemv.MinBytes = 0;
            using var _ = no_grad();
            var split = SplitGemv.Linear(x, w);
            Assert.Equal(new long[] { 1, 1, 1001 }, split.shape);
            Assert.True(MaxAbs(split, nn.functional.linear(x, w)) < 1e-5f);
            // Several rows, or gradients wanted: the plain path.
            var x3 = randn(new long[] { 1, 3, 96 }, generator: g);
            Assert.True(MaxAbs(SplitGemv.Linear(x3, w), nn.functional.linear(x3, w)) == 0f);
        }
        finally { SplitGemv.MinBytes = saved; }
    }

    [Fact]
    public void GqaEqualsMhaWithRepeatedKv()
    {
        var gqaCfg = TestModels.Small(kv: 2);
        using var gqa = TestModels.Model(gqaCfg, 7);
        var mhaCfg = gqaCfg with { NumKvHeads = 4 };
        using var mha = LlamaForCausalLM.Create(mhaCfg);
        using (no_grad())
        {
            var src = gqa.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, p) in mha.named_parameters())
            {
                var s = src[name];
                if (name.EndsWith("k_proj.weight") || name.EndsWith("v_proj.weight"))
                {
                    // [kv·hd, D] → repeat each kv head for its 2 query heads.
                    long hd = gqaCfg.HeadDim;
                    p.copy_(s.view(2, hd, -1).repeat_interleave(2, 0).reshape(p.shape));
                }
                else p.copy_(s);
            }
        }
        var ids = TestModels.Ids(1, 10, 512, 5);
        using var __ = no_grad();
        Assert.True(MaxAbs(gqa.Forward(ids), mha.Forward(ids)) < 1e-5f);
    }

    [Fact]
    public void PackedDocumentsEqualSeparateSequences()
    {
        using var m = TestModels.Model(TestModels.Small());
        using var _ = no_grad();
        var a = TestModels.Ids(1, 7, 512, 1);
        var b = TestModels.Ids(1, 5, 512, 2);
        var packed = cat(new[] { a, b }, 1);
        var docs = tensor(new long[] { 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1 }, new long[] { 1, 12 });
        var lp = m.Forward(packed, new ForwardOptions { DocumentIds = docs });
        Assert.True(MaxAbs(lp.narrow(1, 0, 7), m.Forward(a)) < 1e-5f);
        Assert.True(MaxAbs(lp.narrow(1, 7, 5), m.Forward(b)) < 1e-5f);
    }

    [Fact]
    public void LeftPaddedBatchMatchesSingleRows()
    {
        using var m = TestModels.Model(TestModels.Small());
        using var _ = no_grad();
        var a = TestModels.Ids(1, 9, 512, 1);
        var b = TestModels.Ids(1, 4, 512, 2);
        var padded = cat(new[] { zeros(1, 5, dtype: ScalarType.Int64), b }, 1);
        var batch = cat(new[] { a, padded }, 0);
        var valid = ones(2, 9, dtype: ScalarType.Bool);
        valid[1, TensorIndex.Slice(0, 5)] = tensor(false);
        var pos = stack(new[] { arange(9, dtype: ScalarType.Int64), cat(new[] { zeros(5, dtype: ScalarType.Int64), arange(4, dtype: ScalarType.Int64) }) });
        var lb = m.Forward(batch, new ForwardOptions { KeyValid = valid, Positions = pos });
        Assert.True(MaxAbs(lb.narrow(0, 0, 1), m.Forward(a)) < 1e-5f);
        Assert.True(MaxAbs(lb.narrow(0, 1, 1).narrow(1, 5, 4), m.Forward(b)) < 1e-5f);
    }

    [Fact]
    public void RopeScalingChangesOnlyLongWavelengths()
    {
        var plain = RotaryEmbedding.InverseFrequencies(128, 500000, null);
        var scaled = RotaryEmbedding.InverseFrequencies(128, 500000, new RopeScaling(8, 1, 4, 8192));
        // High frequencies (wavelength < 8192/4 = 2048) unchanged, lowest divided by 8, middle interpolated.
        Assert.Equal(plain[0], scaled[0]);
        Assert.Equal(plain[^1] / 8, scaled[^1], 12);
        int mid = Enumerable.Range(0, 64).First(i => 2 * Math.PI / plain[i] >= 2048 && 2 * Math.PI / plain[i] <= 8192);
        Assert.InRange(scaled[mid], plain[mid] / 8, plain[mid]);
        // Meta reference value: theta 500000, head 128, i = 40 → wavelength ≈ 2π·500000^(80/128).
        double w = 2 * Math.PI / plain[40];
        double s = (8192 / w - 1) / 3.0;
        double expect = w < 2048 ? plain[40] : w > 8192 ? plain[40] / 8 : (1 - s) * plain[40] / 8 + s * plain[40];
        Assert.Equal(expect, scaled[40], 15);
    }
}

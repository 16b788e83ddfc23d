using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Video.Tests;

public class TemporalAggregatorTests
{
    static TemporalAggregatorConfig Tiny(int group = 32, int layers = 2) => new()
    {
        Dim = 32, TokensPerFrame = 6, NumLatents = 6, NumLayers = layers, NumHeads = 2, HeadDim = 8, FfnMultiplier = 2,
        FramesPerGroup = group, MaxFramesPerGroup = 32,
    };

    [Theory]
    [InlineData(16, 32, 1)]
    [InlineData(32, 32, 1)]
    [InlineData(64, 32, 2)]
    [InlineData(16, 16, 1)]
    [InlineData(32, 16, 2)]
    [InlineData(64, 16, 4)]
    [InlineData(40, 32, 2)]
    public void OutputKeepsAFramesShapePerGroup(int frames, int group, int groups)
    {
        using var agg = new TemporalAggregator(Tiny(group)).InitializeWeights(1);
        using var x = torch.randn(2, frames, 6, 32, generator: new Generator(3));
        using var y = agg.Forward(x);
        Assert.Equal(new long[] { 2, groups, 6, 32 }, y.shape);
        Assert.Equal(groups, agg.Config.GroupsFor(frames));
        Assert.True(y.isfinite().all().item<bool>());
    }

    [Fact]
    public void LatentCountIsConfigurable()
    {
        using var agg = new TemporalAggregator(Tiny() with { NumLatents = 3 }).InitializeWeights(1);
        using var x = torch.randn(1, 64, 6, 32);
        using var y = agg.Forward(x, framesPerGroup: 16);
        Assert.Equal(new long[] { 1, 4, 3, 32 }, y.shape);
    }

    [Fact]
    public void GroupsAreAggregatedIndependently()
    {
        using var agg = new TemporalAggregator(Tiny()).InitializeWeights(2);
        using var x = torch.randn(1, 64, 6, 32, generator: new Generator(4));
        using var all = agg.Forward(x);
        using var second = agg.Forward(x.narrow(1, 32, 32));
        Assert.True(all.select(1, 1).allclose(second.select(1, 0), rtol: 1e-4, atol: 1e-5));
        Assert.False(all.select(1, 0).allclose(all.select(1, 1), rtol: 1e-2, atol: 1e-3));
    }

    [Theory]
    [InlineData(TemporalAggregatorConfig.MergeLatents)]
    [InlineData(TemporalAggregatorConfig.MergePerPosition)]
    public void TimeEmbeddingsMakeFrameOrderMatter(string merge)
    {
        var cfg = merge == TemporalAggregatorConfig.MergeLatents ? Tiny() : PerPosition();
        using var agg = new TemporalAggregator(cfg).InitializeWeights(5);
        using var x = torch.randn(1, 4, 6, 32, generator: new Generator(6));
        using var reversed = x.flip(1);
        using var a = agg.Forward(x);
        using var b = agg.Forward(reversed);
        Assert.False(a.allclose(b, rtol: 1e-3, atol: 1e-4));
        Assert.Equal(new long[] { 1, 1, 6, 32 }, a.shape);
    }

    [Fact]
    public void MatchesAPlainTensorReferenceOfThePerceiver()
    {
        var cfg = Tiny(group: 3);
        using var agg = new TemporalAggregator(cfg).InitializeWeights(7);
        using var x = torch.randn(1, 3, 6, 32, generator: new Generator(8));
        using var y = agg.Forward(x);

        using var scope = NewDisposeScope();
        Tensor Ln(Tensor t, PerceiverLayerNorm n)
        {
            var mu = t.mean(new long[] { -1 }, keepdim: true);
            var var_ = (t - mu).pow(2).mean(new long[] { -1 }, keepdim: true);
            return (t - mu) / (var_ + 1e-5).sqrt() * n.weight + n.bias;
        }
        Tensor Heads(Tensor t) => t.view(-1, 2, 8).transpose(0, 1);                                // [H, N, hd]
        var media = (x[0] + agg.time_embedding.narrow(0, 0, 3).unsqueeze(1)).reshape(18, 32);
        var lat = agg.latents.clone();
        foreach (var layer in agg.layers)
        {
            var a = layer.attn;
            var nl = Ln(lat, a.norm_latents);
            var kvIn = torch.cat(new[] { Ln(media, a.norm_media), nl }, 0);
            var q = Heads(nl.matmul(a.q_proj.weight.t()));
            var k = Heads(kvIn.matmul(a.k_proj.weight.t()));
            var v = Heads(kvIn.matmul(a.v_proj.weight.t()));
            var att = (q.matmul(k.transpose(1, 2)) / Math.Sqrt(8)).softmax(-1).matmul(v);      // [H, L, hd]
            lat = lat + att.transpose(0, 1).reshape(6, 16).matmul(a.o_proj.weight.t());
            var f = layer.ffn;
            var hidden = Ln(lat, f.norm).matmul(f.fc1.weight.t());
            var gelu = hidden * 0.5 * (1 + torch.special.erf(hidden / Math.Sqrt(2)));
            lat = lat + gelu.matmul(f.fc2.weight.t());
        }
        var expected = Ln(lat, agg.norm);
        Assert.True(y[0, 0].allclose(expected, rtol: 1e-4, atol: 1e-5), $"max diff {(y[0, 0] - expected).abs().max().item<float>()}");
    }

    [Fact]
    public void GroupLargerThanTheTimeEmbeddingIsRejected()
    {
        Assert.Throws<ConfigException>(() => new TemporalAggregator(Tiny() with { FramesPerGroup = 33 }));
        using var agg = new TemporalAggregator(Tiny()).InitializeWeights(1);
        using var x = torch.randn(1, 64, 6, 32);
        Assert.Throws<ArgumentException>(() => agg.Forward(x, framesPerGroup: 64));
        using var wrong = torch.randn(1, 4, 6, 31);
        Assert.Throws<ArgumentException>(() => agg.Forward(wrong));
    }

    [Fact]
    public void ParameterNamesAreTheCheckpointKeys()
    {
        using var agg = new TemporalAggregator(Tiny(layers: 1), torch.device(DeviceType.META));
        var names = agg.named_parameters().Select(p => p.name).ToArray();
        Assert.Equal(new[]
        {
            "latents", "time_embedding",
            "layers.0.attn.norm_media.weight", "layers.0.attn.norm_media.bias",
            "layers.0.attn.norm_latents.weight", "layers.0.attn.norm_latents.bias",
            "layers.0.attn.q_proj.weight", "layers.0.attn.k_proj.weight", "layers.0.attn.v_proj.weight", "layers.0.attn.o_proj.weight",
            "layers.0.ffn.norm.weight", "layers.0.ffn.norm.bias", "layers.0.ffn.fc1.weight", "layers.0.ffn.fc2.weight",
            "norm.weight", "norm.bias",
        }, names);
    }

    [Fact]
    public void WithoutGroupEmbeddingsSwappedGroupsGiveSwappedOutputs()
    {
        // The defect group embeddings remove: the two aggregated frames of a clip come out the same set either way round.
        using var agg = new TemporalAggregator(Tiny(group: 4)).InitializeWeights(9);
        using var x = torch.randn(1, 8, 6, 32, generator: new Generator(10));
        using var swapped = torch.cat(new[] { x.narrow(1, 4, 4), x.narrow(1, 0, 4) }, 1);
        using var a = agg.Forward(x);
        using var b = agg.Forward(swapped);
        Assert.True(a.select(1, 0).allclose(b.select(1, 1), rtol: 0, atol: 0) && a.select(1, 1).allclose(b.select(1, 0), rtol: 0, atol: 0));
    }

    [Fact]
    public void GroupEmbeddingsMakeTheOrderOfGroupsMatter()
    {
        using var agg = new TemporalAggregator(Tiny(group: 4) with { MaxGroups = 2 }).InitializeWeights(9);
        using var x = torch.randn(1, 8, 6, 32, generator: new Generator(10));
        using var swapped = torch.cat(new[] { x.narrow(1, 4, 4), x.narrow(1, 0, 4) }, 1);
        using var a = agg.Forward(x);
        using var b = agg.Forward(swapped);
        Assert.False(a.select(1, 0).allclose(b.select(1, 1), rtol: 1e-3, atol: 1e-4));
        Assert.False(a.select(1, 1).allclose(b.select(1, 0), rtol: 1e-3, atol: 1e-4));
    }

    [Fact]
    public void GroupKAddsRowKOfTheGroupEmbedding()
    {
        // Group 1 of a clip equals a one-group clip of the same frames whose time embedding has row 1 of the group
        // embedding folded in (and row 0 subtracted, which every group gets from its first row).
        var cfg = Tiny(group: 3) with { MaxGroups = 3 };
        using var agg = new TemporalAggregator(cfg).InitializeWeights(11);
        using var x = torch.randn(1, 7, 6, 32, generator: new Generator(12));                       // groups of 3, 3, 1
        using var y = agg.Forward(x);
        Assert.Equal(new long[] { 1, 3, 6, 32 }, y.shape);
        using var noGrad = torch.no_grad();
        for (int k = 0; k < 3; k++)
        {
            long n = Math.Min(3, 7 - 3 * k);
            using var shifted = (x.narrow(1, 3 * k, n) + (agg.group_embedding![k] - agg.group_embedding[0]).view(1, 1, 1, 32)).contiguous();
            using var alone = agg.Forward(shifted);
            Assert.True(y.select(1, k).allclose(alone.select(1, 0), rtol: 1e-4, atol: 1e-5), $"group {k}");
        }
    }

    [Fact]
    public void MoreGroupsThanGroupEmbeddingsAreRejected()
    {
        using var agg = new TemporalAggregator(Tiny(group: 4) with { MaxGroups = 2 }).InitializeWeights(1);
        using var x = torch.randn(1, 9, 6, 32);
        var e = Assert.Throws<ArgumentException>(() => agg.Forward(x));
        Assert.Contains("max_groups", e.Message);
        Assert.Throws<ConfigException>(() => new TemporalAggregator(Tiny() with { MaxGroups = -1 }));
        var video = new VideoConfig { Aggregator = Tiny(group: 4) with { MaxGroups = 2 }, NumFrames = 12 };
        var c = Assert.Throws<ConfigException>(() => video.Validate(6, new[] { 1, 4 }));
        Assert.Contains("max_groups = 2", c.Message);
    }

    [Fact]
    public void GroupEmbeddingIsACheckpointKeyAfterTheTimeEmbedding()
    {
        using var agg = new TemporalAggregator(Tiny(layers: 1) with { MaxGroups = 4 }, torch.device(DeviceType.META));
        var p = agg.named_parameters().ToDictionary(x => x.name, x => x.parameter.shape);
        Assert.Equal(new[] { "latents", "time_embedding", "group_embedding" }, agg.named_parameters().Take(3).Select(x => x.name).ToArray());
        Assert.Equal(new long[] { 4, 32 }, p["group_embedding"]);
    }

    [Fact]
    public void FullSizeAggregatorBuildsOnTheMetaDevice()
    {
        var cfg = VideoPresets.Get("llama3.2-11b-video").Video.Aggregator;
        using var agg = new TemporalAggregator(cfg, torch.device(DeviceType.META));
        long d = 4096, inner = 8 * 64, latents = 4 * 1601;
        long perLayer = 2 * 2 * d + 4 * d * inner + 2 * d + 2 * d * 4 * d;
        Assert.Equal(latents * d + 32 * d + 4 * d + 2 * perLayer + 2 * d, agg.ParameterCount());   // + 4 group embeddings
        Assert.Equal(6404, cfg.Latents);
    }
    static TemporalAggregatorConfig PerPosition(int group = 4, int layers = 2) =>
        Tiny(group, layers) with { Merge = TemporalAggregatorConfig.MergePerPosition, NumLatents = null, MaxGroups = 2 };

    [Fact]
    public void PerPositionMergingEqualsOneLatentPerPlace()
    {
        // Place t of aggregated frame k is what a one-latent, one-token-per-frame aggregator with the same weights makes of
        // the clip's tokens at t when its latent is latent row t plus the mean of group k's (embedded) tokens at t.
        var cfg = PerPosition();
        using var agg = new TemporalAggregator(cfg).InitializeWeights(21);
        using var noGrad = torch.no_grad();
        using (var lat = torch.randn(6, 32, generator: new Generator(22))) agg.latents.copy_(lat);   // distinct rows per place
        using var x = torch.randn(2, 8, 6, 32, generator: new Generator(23));
        using var y = agg.Forward(x);
        Assert.Equal(new long[] { 2, 2, 6, 32 }, y.shape);
        using var one = new TemporalAggregator(cfg with { Merge = TemporalAggregatorConfig.MergeLatents, TokensPerFrame = 1, NumLatents = 1 });
        var src = agg.state_dict();
        foreach (var (name, p) in one.named_parameters())
            p.copy_(name == "latents" ? src["latents"].narrow(0, 0, 1) : src[name]);
        for (int b = 0; b < 2; b++)
            for (int t = 0; t < 6; t++)
                for (int k = 0; k < 2; k++)
                {
                    using var scope = NewDisposeScope();
                    var place = x[b].narrow(1, t, 1).unsqueeze(0).contiguous();                     // [1, 8, 1, 32]
                    var embedded = x[b].narrow(0, 4 * k, 4).select(1, t) + agg.time_embedding.narrow(0, 0, 4) + agg.group_embedding![k];
                    one.latents.copy_(agg.latents.narrow(0, t, 1) + embedded.mean(new long[] { 0 }, keepdim: true));
                    var r = one.Forward(place);                                                     // [1, 2, 1, 32]
                    Assert.True(y[b, k, t].allclose(r[0, k, 0], rtol: 1e-4, atol: 1e-5), $"clip {b}, place {t}, group {k}");
                }
    }

    [Fact]
    public void PerPositionMergingKeepsEachPlaceApart()
    {
        // Changing the tokens at one place of the frames changes that place of the aggregated frame only; with the
        // default merge every aggregated token changes.
        using var agg = new TemporalAggregator(PerPosition()).InitializeWeights(24);
        using var flat = new TemporalAggregator(Tiny(group: 4) with { MaxGroups = 2 }).InitializeWeights(24);
        using var x = torch.randn(1, 8, 6, 32, generator: new Generator(25));
        using var changed = x.clone();
        using (var noGrad = torch.no_grad()) changed.narrow(2, 2, 1).add_(torch.randn(1, 8, 1, 32, generator: new Generator(31)));
        using var a = agg.Forward(x);
        using var b = agg.Forward(changed);
        for (int t = 0; t < 6; t++)
            Assert.Equal(t != 2, a.narrow(2, t, 1).allclose(b.narrow(2, t, 1), rtol: t == 2 ? 1e-3 : 0, atol: t == 2 ? 1e-3 : 0));
        using var fa = flat.Forward(x);
        using var fb = flat.Forward(changed);
        for (int t = 0; t < 6; t++) Assert.False(fa.narrow(2, t, 1).allclose(fb.narrow(2, t, 1), rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public void PerPositionLatentsStartAtZeroSoTheFrameShowsThrough()
    {
        using var agg = new TemporalAggregator(PerPosition()).InitializeWeights(28);
        Assert.Equal(0f, agg.latents.abs().max().item<float>());
        Assert.True(agg.time_embedding.std().item<float>() > 0.5f);
        // Identical frames give an aggregated frame that depends on the frame: two different frames differ.
        using var f1 = torch.randn(1, 1, 6, 32, generator: new Generator(29)).expand(1, 4, 6, 32).contiguous();
        using var f2 = torch.randn(1, 1, 6, 32, generator: new Generator(30)).expand(1, 4, 6, 32).contiguous();
        using var a = agg.Forward(f1);
        using var b = agg.Forward(f2);
        Assert.False(a.allclose(b, rtol: 1e-2, atol: 1e-2));
    }

    [Fact]
    public void PerPositionMergingNeedsOneLatentPerPlaceAndAKnownName()
    {
        var e = Assert.Throws<ConfigException>(() => new TemporalAggregator(PerPosition() with { NumLatents = 5 }));
        Assert.Contains("num_latents = 5", e.Message);
        Assert.Contains("tokens_per_frame = 6", e.Message);
        var m = Assert.Throws<ConfigException>(() => new TemporalAggregator(Tiny() with { Merge = "mean" }));
        Assert.Contains("merge = 'mean'", m.Message);
        using var agg = new TemporalAggregator(PerPosition()).InitializeWeights(1);
        using var wrong = torch.randn(1, 4, 5, 32);
        Assert.Contains("tokens_per_frame", Assert.Throws<ArgumentException>(() => agg.Forward(wrong)).Message);
    }
    [Fact]
    public void PlaceCodeFollowsTheTileGridAndLeavesClassTokensAlone()
    {
        // 4 tiles (2 × 2) of a class token + 2 × 2 patches: the frame is 4 patches a side.
        var cfg = new TemporalAggregatorConfig
        {
            Dim = 8, TokensPerFrame = 20, NumLayers = 1, NumHeads = 1, HeadDim = 8, FramesPerGroup = 2, MaxFramesPerGroup = 2,
            Merge = TemporalAggregatorConfig.MergePerPosition, PlaceCode = true, TilesPerFrame = 4,
        }.Validate();
        var code = cfg.PlaceCodeValues();
        float[] Row(int token) => code.AsSpan(token * 8, 8).ToArray();
        foreach (int cls in new[] { 0, 5, 10, 15 }) Assert.All(Row(cls), v => Assert.Equal(0f, v));
        double W(int f) => Math.PI * (f + 1) / 2;
        void Place(int token, int x, int y)
        {
            var r = Row(token);
            for (int f = 0; f < 2; f++)
            {
                Assert.Equal(Math.Sin(W(f) * (x + 0.5) / 4), r[4 * f], 5);
                Assert.Equal(Math.Cos(W(f) * (x + 0.5) / 4), r[4 * f + 1], 5);
                Assert.Equal(Math.Sin(W(f) * (y + 0.5) / 4), r[4 * f + 2], 5);
                Assert.Equal(Math.Cos(W(f) * (y + 0.5) / 4), r[4 * f + 3], 5);
            }
        }
        Place(1, 0, 0); Place(2, 1, 0); Place(3, 0, 1); Place(4, 1, 1);                        // tile 0, top left
        Place(6, 2, 0); Place(9, 3, 1);                                                          // tile 1, top right
        Place(11, 0, 2); Place(19, 3, 3);                                                        // tiles 2 and 3, bottom row
    }

    [Fact]
    public void PlaceCodeIsAddedToTheAggregatedFrame()
    {
        var cfg = PerPosition() with { TokensPerFrame = 20, Dim = 32, TilesPerFrame = 4 };
        using var plain = new TemporalAggregator(cfg).InitializeWeights(41);
        using var coded = new TemporalAggregator(cfg with { PlaceCode = true });
        using (var noGrad = torch.no_grad())
            foreach (var (name, p) in coded.named_parameters()) p.copy_(plain.state_dict()[name]);
        Assert.Equal(plain.named_parameters().Select(p => p.name), coded.named_parameters().Select(p => p.name));   // no new key
        using var x = torch.randn(1, 8, 20, 32, generator: new Generator(42));
        using var a = plain.Forward(x);
        using var b = coded.Forward(x);
        using var code = torch.tensor(cfg.PlaceCodeValues(), new long[] { 20, 32 });
        Assert.True((b - a).allclose(code.expand(1, 2, 20, 32), rtol: 1e-5, atol: 1e-5));
    }

    [Fact]
    public void PlaceCodeNeedsPerPositionMergingAndASquareTileGrid()
    {
        Assert.Contains("place_code", Assert.Throws<ConfigException>(() => (Tiny() with { PlaceCode = true }).Validate()).Message);
        Assert.Contains("place_code", Assert.Throws<ConfigException>(() => (PerPosition() with { PlaceCode = true }).Validate()).Message);
        Assert.Contains("tiles_per_frame = 3", Assert.Throws<ConfigException>(() => (PerPosition() with { TilesPerFrame = 3 }).Validate()).Message);
        Assert.Contains("tokens per tile = 6", Assert.Throws<ConfigException>(() => (PerPosition() with { TilesPerFrame = 1 }).Validate()).Message);
    }
}

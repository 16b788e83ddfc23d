using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision.Tests;

public class EncoderTests
{
    [Fact]
    public void EncoderMaskMasksOnlyPadPairs()
    {
        // 2 tile slots, tile 1 unused, 3 real tokens padded to 4 per tile: tokens 3, 4..7 are "padding".
        var mask = VisionModel.EncoderMask(tensor(new long[] { 1, 0 }, new long[] { 1, 2 }), 3, 4);
        Assert.Equal(new long[] { 1, 1, 8, 8 }, mask.shape);
        bool M(int i, int j) => mask[0, 0, i, j].item<bool>();
        Assert.True(M(0, 3));   // real query attends to a pad key
        Assert.True(M(0, 6));   // and to tokens of an empty tile slot
        Assert.True(M(5, 1));   // pad query attends to real keys
        Assert.False(M(3, 5));  // pad–pad pairs are masked
        Assert.False(M(7, 7));
    }

    [Fact]
    public void BuildingTheEncoderTurnsNnpackOff()
    {
        // The patch convolution would otherwise make libtorch initialise NNPACK (a warning on CPUs it does not support).
        using var m = new VisionModel(VisionPresets.Get("tiny-vision").Vision, CPU, ScalarType.Float32);
        Assert.False(Text.LibTorchBackends.NnpackEnabled);
    }

    [Fact]
    public void PreAndPostNormsUseHfsEpsWhateverNormEpsSays()
    {
        // HF: layernorm_pre/post = nn.LayerNorm(hidden_size) (eps 1e-5); norm_eps only reaches the encoder layers.
        var vision = VisionPresets.Get("tiny-vision").Vision;
        using var a = new VisionModel(vision with { NormEps = 1e-6 }, CPU, ScalarType.Float32);
        using var b = new VisionModel(vision, CPU, ScalarType.Float32);
        Text.WeightInit.Apply(a, 3);
        Text.WeightInit.Apply(b, 3);
        var gen = new Generator(5, CPU);
        using var x = randn(new long[] { 2, 7, vision.HiddenSize }, generator: gen) * 1e-3;   // variance ~1e-6: eps matters
        using var _ = no_grad();
        foreach (var (na, nb) in new[] { (a.layernorm_pre, b.layernorm_pre), (a.layernorm_post, b.layernorm_post) })
        {
            using var want = nn.functional.layer_norm(x, new long[] { vision.HiddenSize }, nb.weight, nb.bias, 1e-5);
            using var got = na.forward(x);
            Assert.True(got.allclose(want, rtol: 1e-5, atol: 1e-6), $"max diff {(got - want).abs().max().item<float>()}");
            using var withSmallEps = nn.functional.layer_norm(x, new long[] { vision.HiddenSize }, nb.weight, nb.bias, 1e-6);
            Assert.False(got.allclose(withSmallEps, rtol: 1e-3, atol: 1e-3));
        }
    }

    [Fact]
    public void OutputShapesForBatchesWithDifferentImageCounts()
    {
        using var m = TestSupport.Tiny(2);
        var pre = m.Preprocessor;
        using var batch = pre.Batch(new[]
        {
            (IReadOnlyList<RgbImage>)new[] { TestSupport.Scene(300, 100, 1), TestSupport.Scene(90, 200, 2) },
            new[] { TestSupport.Scene(128, 128, 3) },
        });
        using var _ = no_grad();
        using var f = m.vision_model.Forward(batch.PixelValues, batch.AspectRatioIds, batch.AspectRatioMask);
        var c = m.Config.Vision;
        Assert.Equal(new long[] { 2, 2, 4, c.TokensPerTile, c.HiddenSize * 3 }, f.shape);
        Assert.Equal(96, c.OutputDim);
        using var s = m.EncodeImages(batch);
        Assert.Equal(new long[] { 2, 2 * 4 * 65, 64 }, s.shape);
    }

    [Fact]
    public void ImagesAreEncodedIndependentlyOfTheirBatch()
    {
        using var m = TestSupport.Tiny(2);
        var a = TestSupport.Scene(300, 100, 1);
        var b = TestSupport.Scene(90, 200, 2);
        using var _ = no_grad();
        using var alone = m.Preprocessor.Batch(new[] { (IReadOnlyList<RgbImage>)new[] { a } });
        using var both = m.Preprocessor.Batch(new[] { (IReadOnlyList<RgbImage>)new[] { b }, new[] { a, b } });
        using var fa = m.vision_model.Forward(alone.PixelValues, alone.AspectRatioIds, alone.AspectRatioMask);
        using var fb = m.vision_model.Forward(both.PixelValues, both.AspectRatioIds, both.AspectRatioMask);
        Assert.True(fa[0, 0].allclose(fb[1, 0], 1e-4, 1e-5));
    }

    [Fact]
    public void IntermediateFeaturesAreInterleavedStatesEnteringTheLayers()
    {
        using var m = TestSupport.Tiny(7);
        var c = m.Config.Vision;                            // intermediate indices [0, 1], hidden 32
        using var batch = m.Preprocessor.Batch(new[] { (IReadOnlyList<RgbImage>)new[] { TestSupport.Scene(200, 120, 4) } });
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var f = m.vision_model.Forward(batch.PixelValues, batch.AspectRatioIds, batch.AspectRatioMask);  // [1,1,4,65,96]

        // Recompute the state entering local block 0 and block 1 step by step.
        var v = m.vision_model;
        var ids = batch.AspectRatioIds.reshape(1);
        int tok = c.TokensPerTile, padded = c.PaddedTokensPerTile, d = c.HiddenSize;
        var x = v.patch_embedding.forward(batch.PixelValues.reshape(4, 3, c.ImageSize, c.ImageSize)).reshape(1, 4, tok - 1, d);
        x = v.pre_tile_positional_embedding.Forward(x, ids);
        x = cat(new[] { v.class_embedding.view(1, 1, 1, d).expand(1, 4, 1, d), x }, 2);
        x = v.gated_positional_embedding.Forward(x, ids);
        x = v.layernorm_pre.forward(x);
        x = nn.functional.pad(x, new long[] { 0, 0, 0, padded - tok }).reshape(1, 4 * padded, d);
        var mask = VisionModel.EncoderMask(batch.AspectRatioMask.reshape(1, 4), tok, padded);
        var h1 = v.transformer.layers[0].Forward(x, mask);
        var s0 = x.reshape(1, 4, padded, d).narrow(2, 0, tok);
        var s1 = h1.reshape(1, 4, padded, d).narrow(2, 0, tok);

        var inter = f[0, 0].narrow(-1, d, 2 * d);                                       // [4, 65, 64]
        // feature d + 2·ch + k = channel ch of intermediate k
        var even = inter.index_select(-1, arange(0, 2 * d, 2));
        var odd = inter.index_select(-1, arange(1, 2 * d, 2));
        Assert.True(even.allclose(s0[0], 1e-5, 1e-5));
        Assert.True(odd.allclose(s1[0], 1e-5, 1e-5));
        Assert.False(s0.allclose(s1, 1e-3, 1e-3));
    }
}

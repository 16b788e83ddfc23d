using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision.Tests;

/// <summary>q8 image models: the cross-attention layers are quantized, the encoder is not, and the folder round-trips.</summary>
public class QuantizedVisionTests
{
    [Fact]
    public void Q8ImageModelQuantizesTheDecoderAndCrossAttentionOnlyAndRoundTrips()
    {
        string src = TestSupport.TempDir();
        using (var f = TestSupport.Tiny(21)) f.Save(src);
        using var m = VisionLanguageModel.FromPretrained(src);
        using var q = VisionLanguageModel.FromPretrained(src, new LoadOptions { Quantize = WeightQuantization.Q8 });
        var dt = q.named_parameters().ToDictionary(p => p.name, p => p.parameter.dtype);
        int cross = q.Config.CrossAttentionLayers[0];
        Assert.Equal(ScalarType.Int8, dt[$"language_model.model.layers.{cross}.cross_attn.k_proj.weight"]);
        Assert.Equal(ScalarType.Int8, dt[$"language_model.model.layers.{cross}.mlp.down_proj.weight"]);
        Assert.Equal(ScalarType.Int8, dt["language_model.model.layers.0.self_attn.q_proj.weight"]);
        Assert.Equal(ScalarType.Float32, dt[$"language_model.model.layers.{cross}.cross_attn.q_norm.weight"]);
        Assert.All(dt.Where(kv => !kv.Key.StartsWith("language_model.", StringComparison.Ordinal)), kv => Assert.Equal(ScalarType.Float32, kv.Value));

        // Logits with an image stay close to f32.
        var img = TestSupport.Scene(200, 160, 7);
        var ids = VisionPrompt.EncodeInstruct(m.Tokenizer, "What is in this picture?", 1);
        using var batch = m.Preprocessor.Batch(new[] { (IReadOnlyList<RgbImage>)new[] { img } });
        using (no_grad())
        {
            using var a = m.Forward(tensor(ids.Select(i => (long)i).ToArray(), new long[] { 1, ids.Count }), batch);
            using var b = q.Forward(tensor(ids.Select(i => (long)i).ToArray(), new long[] { 1, ids.Count }), batch);
            double spread = a.std().item<float>(), err = (a - b).abs().mean().item<float>();
            Assert.True(err < 0.05 * spread, $"q8 image logits: mean error {err:G3} vs logit std {spread:G3}");
        }

        string dst = TestSupport.TempDir();
        q.Save(dst);
        using var back = VisionLanguageModel.FromPretrained(dst);
        var sa = q.state_dict();
        var sb = back.state_dict();
        Assert.Equal(sa.Count, sb.Count);
        foreach (var (k, v) in sa) Assert.True(v.dtype == sb[k].dtype && v.equal(sb[k]).all().item<bool>(), k);
    }
}

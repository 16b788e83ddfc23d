using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision.Tests;

public class CheckpointTests
{
    static string Manifest(VisionLanguageModel m) =>
        string.Join("\n", m.named_parameters().Select(np => $"{np.name} [{string.Join(", ", np.parameter.shape)}]")) + "\n";

    [Fact]
    public void TinyVisionKeysEqualCheckedInManifest()
    {
        // Manifests/tiny-vision.txt: `key [shape]` per line, generated on the meta device from the HF Mllama key layout
        // (regenerate with L3MM_WRITE_MANIFEST=1 and review the diff).
        using var m = VisionLanguageModel.Create(VisionPresets.Get("tiny-vision"), torch.device(DeviceType.META));
        string actual = Manifest(m);
        string file = Path.Combine(AppContext.BaseDirectory, "Manifests", "tiny-vision.txt");
        if (Environment.GetEnvironmentVariable("L3MM_WRITE_MANIFEST") is string dir) File.WriteAllText(Path.Combine(dir, "tiny-vision.txt"), actual);
        Assert.Equal(File.ReadAllText(file), actual);
    }

    [Fact]
    public void KeyCountsAndNamesFollowHfLayoutAt11B()
    {
        using var m = VisionLanguageModel.Create(VisionPresets.Get("llama3.2-11b-vision"), torch.device(DeviceType.META));
        var shapes = m.named_parameters().ToDictionary(np => np.name, np => np.parameter.shape);
        Assert.Equal(906, shapes.Count);                       // HF 11B key list: 395 text + 509 vision + 2 projector
        Assert.Equal(new long[] { 128264, 4096 }, shapes["language_model.model.embed_tokens.weight"]);
        Assert.Equal(new long[] { 128256, 4096 }, shapes["language_model.lm_head.weight"]);
        Assert.Equal(new long[] { 1024, 4096 }, shapes["language_model.model.layers.3.cross_attn.k_proj.weight"]);
        Assert.Equal(new long[] { 128 }, shapes["language_model.model.layers.38.cross_attn.q_norm.weight"]);
        Assert.Equal(new long[] { 1 }, shapes["language_model.model.layers.8.cross_attn_attn_gate"]);
        Assert.Equal(new long[] { 1 }, shapes["language_model.model.layers.8.cross_attn_mlp_gate"]);
        Assert.Equal(new long[] { 4096, 4096 }, shapes["language_model.model.layers.4.self_attn.q_proj.weight"]);
        Assert.False(shapes.ContainsKey("language_model.model.layers.3.self_attn.q_proj.weight"));
        Assert.Equal(new long[] { 1280, 3, 14, 14 }, shapes["vision_model.patch_embedding.weight"]);
        Assert.Equal(new long[] { 1601, 1280 }, shapes["vision_model.gated_positional_embedding.embedding"]);
        Assert.Equal(new long[] { 9, 8197120 }, shapes["vision_model.gated_positional_embedding.tile_embedding.weight"]);
        Assert.Equal(new long[] { 9, 5120 }, shapes["vision_model.pre_tile_positional_embedding.embedding.weight"]);
        Assert.Equal(new long[] { 1 }, shapes["vision_model.post_tile_positional_embedding.gate"]);
        Assert.Equal(new long[] { 5120, 1280 }, shapes["vision_model.transformer.layers.31.mlp.fc1.weight"]);
        Assert.Equal(new long[] { 1 }, shapes["vision_model.global_transformer.layers.7.gate_ffn"]);
        Assert.False(shapes.ContainsKey("vision_model.transformer.layers.0.gate_attn"));
        Assert.Equal(new long[] { 4096, 7680 }, shapes["multi_modal_projector.weight"]);
        Assert.Equal(new long[] { 4096 }, shapes["multi_modal_projector.bias"]);
    }

    // Parameter totals from the shapes of the HF 11B/90B checkpoints' tensors, computed independently of the modules.
    static long Expected(int d, int selfL, int crossL, int heads, int ffn, int tile)
    {
        long hd = 128, kv = 8;
        long attn = d * heads * hd * 2 + 2 * d * kv * hd;
        long mlp = 3L * d * ffn;
        long self = attn + mlp + 2L * d;
        long cross = attn + mlp + 2L * d + 2 * hd + 2;
        long text = 128264L * d + 128256L * d + d + selfL * self + crossL * cross;
        long tok = (tile / 14) * (tile / 14) + 1, vd = 1280;
        long vlayer = 4 * vd * vd + (vd * 5120 + 5120) + (5120 * vd + vd) + 4 * vd;
        long vision = vd * 3 * 14 * 14 + vd + tok * vd + 1 + 9 * 4 * tok * vd + 2 * (9 * 4 * vd + 1) + 4 * vd
                      + 32 * vlayer + 8 * (vlayer + 2);
        long proj = 7680L * d + d;
        return text + vision + proj;
    }

    [Fact]
    public void FullSizePresetsConstructOnMetaWithPublishedParameterCounts()
    {
        using (var m = VisionLanguageModel.Create(VisionPresets.Get("llama3.2-11b-vision"), torch.device(DeviceType.META)))
        {
            long n = m.ParameterCount();
            Assert.Equal(Expected(4096, 32, 8, 32, 14336, 560), n);
            Assert.InRange(n, 10_600_000_000, 10_700_000_000);   // ≈10.67 B from the shapes (HF model card: 10.6 B)
            Assert.InRange(m.vision_model.parameters().Sum(p => p.numel()), 0.85e9, 0.87e9); // ≈0.86 B incl. tables
        }
        using (var m = VisionLanguageModel.Create(VisionPresets.Get("llama3.2-90b-vision"), torch.device(DeviceType.META)))
        {
            long n = m.ParameterCount();
            Assert.Equal(Expected(8192, 80, 20, 64, 28672, 560), n);
            Assert.InRange(n, 88_400_000_000, 88_900_000_000);   // ≈88.6 B from the shapes (HF model card: 88.8 B)
            Assert.Equal(1494, m.named_parameters().Count());
        }
    }

    static void AssertSameWeights(VisionLanguageModel a, VisionLanguageModel b)
    {
        var pb = b.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        Assert.Equal(a.named_parameters().Count(), pb.Count);
        foreach (var (name, p) in a.named_parameters())
            Assert.True(p.equal(pb[name]).all().item<bool>(), $"{name} differs after save/load");
    }

    [Fact]
    public void SaveLoadIsBitExactSingleAndSharded()
    {
        using var m = TestSupport.Tiny(3);
        string single = TestSupport.TempDir(), sharded = TestSupport.TempDir();
        m.Save(single);
        Assert.True(File.Exists(Path.Combine(single, "model.safetensors")));
        m.Save(sharded, maxShardBytes: 8 << 20);
        Assert.True(File.Exists(Path.Combine(sharded, "model.safetensors.index.json")));
        Assert.True(Directory.GetFiles(sharded, "model-*-of-*.safetensors").Length > 1);
        using var a = VisionLanguageModel.FromPretrained(single);
        using var b = VisionLanguageModel.FromPretrained(sharded);
        Assert.Equal(m.Config, a.Config);
        AssertSameWeights(m, a);
        AssertSameWeights(m, b);
    }

    [Fact]
    public void SaveRandomStreamsTheWeightsOfAnInitialisedModel()
    {
        var cfg = VisionPresets.Get("tiny-vision");
        string held = TestSupport.TempDir(), streamed = TestSupport.TempDir();
        using (var m = VisionLanguageModel.Create(cfg).InitializeWeights(5)) m.Save(held, ScalarType.BFloat16, maxShardBytes: 4 << 20);
        VisionLanguageModel.SaveRandom(cfg, streamed, 5, ScalarType.BFloat16, maxShardBytes: 4 << 20);
        var files = Directory.GetFiles(held).Select(Path.GetFileName).OrderBy(f => f, StringComparer.Ordinal).ToList();
        Assert.Contains("model.safetensors.index.json", files);
        Assert.Equal(files, Directory.GetFiles(streamed).Select(Path.GetFileName).OrderBy(f => f, StringComparer.Ordinal).ToList());
        foreach (var f in files)
            Assert.Equal(File.ReadAllBytes(Path.Combine(held, f!)), File.ReadAllBytes(Path.Combine(streamed, f!)));
    }

    [Fact]
    public void Bf16CheckpointLoadsKeyByKey()
    {
        using var m = TestSupport.Tiny(4);
        string dir = TestSupport.TempDir();
        m.Save(dir, ScalarType.BFloat16);
        using var r = CheckpointReader.Open(dir);
        Assert.All(r.Keys, k => Assert.Equal("BF16", r.Info(k).DType is var d ? SafeTensorDType.Name(d) : ""));
        using var loaded = VisionLanguageModel.FromPretrained(dir);
        foreach (var (name, p) in m.named_parameters())
        {
            var q = loaded.named_parameters().First(x => x.name == name).parameter;
            Assert.True(p.to_type(ScalarType.BFloat16).to_type(ScalarType.Float32).equal(q).all().item<bool>(), name);
        }
    }

    [Fact]
    public void NewerTransformersKeySpellingLoads()
    {
        using var m = TestSupport.Tiny(5);
        string dir = TestSupport.TempDir();
        m.Save(dir);
        // Rewrite with the newer spelling (model.vision_model.*, model.language_model.*, lm_head.weight).
        var renamed = m.named_parameters().Select(np => new KeyValuePair<string, Tensor>(VisionLanguageModel.NewerKey(np.name), np.parameter.detach())).ToList();
        Assert.Contains(renamed, kv => kv.Key == "lm_head.weight");
        Assert.Contains(renamed, kv => kv.Key == "model.language_model.embed_tokens.weight");
        Assert.Contains(renamed, kv => kv.Key == "model.multi_modal_projector.weight");
        File.Delete(Path.Combine(dir, "model.safetensors"));
        SafeTensorsWriter.Save(Path.Combine(dir, "model.safetensors"), renamed);
        using var loaded = VisionLanguageModel.FromPretrained(dir);
        AssertSameWeights(m, loaded);
    }

    [Fact]
    public void MissingOrExtraKeysAreNamed()
    {
        using var m = TestSupport.Tiny(6);
        string dir = TestSupport.TempDir();
        var tensors = m.named_parameters().Where(np => np.name != "vision_model.class_embedding")
            .Select(np => new KeyValuePair<string, Tensor>(np.name, np.parameter.detach())).ToList();
        tensors.Add(new("vision_model.bogus", torch.zeros(2)));
        SafeTensorsWriter.Save(Path.Combine(dir, "model.safetensors"), tensors);
        File.WriteAllText(Path.Combine(dir, "config.json"), VisionLanguageConfigJson.ToHuggingFace(m.Config).ToJsonString());
        var e = Assert.Throws<CheckpointFormatException>(() => VisionLanguageModel.FromPretrained(dir));
        Assert.Contains("vision_model.class_embedding", e.Message);
        Assert.Contains("vision_model.bogus", e.Message);
    }
}

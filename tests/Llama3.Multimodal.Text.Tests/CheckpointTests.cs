using System.Text.Json.Nodes;
using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text.Tests;

public class CheckpointTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void HfAndMetaLayoutsGiveIdenticalLogits(bool tied)
    {
        var cfg = TestModels.Small(tied: tied);
        using var m = TestModels.Model(cfg, 11);
        string hf = TestModels.TempDir(), meta = TestModels.TempDir();
        m.Save(hf, CheckpointLayout.HuggingFace);
        m.Save(meta, CheckpointLayout.Meta);
        using (var r = CheckpointReader.Open(meta))
        {
            Assert.Contains("layers.0.attention.wq.weight", r.Keys);
            Assert.Contains("layers.1.feed_forward.w2.weight", r.Keys);
            Assert.Contains("output.weight", r.Keys);
        }
        using var a = LlamaForCausalLM.FromPretrained(hf);
        using var b = LlamaForCausalLM.FromPretrained(meta);
        Assert.Equal(tied, b.Config.TieWordEmbeddings);
        var ids = TestModels.Ids(1, 9, cfg.VocabSize, 4);
        using var _ = no_grad();
        var la = a.Forward(ids);
        var lb = b.Forward(ids);
        Assert.True(la.equal(lb).all().item<bool>());
        Assert.True(la.equal(m.Forward(ids)).all().item<bool>());
    }

    [Fact]
    public void RotaryPermutationMapsMetaPairRotationToHfRotateHalf()
    {
        // Meta rotates adjacent pairs (2i, 2i+1) as complex numbers; HF rotates (i, i+d/2) with permuted rows.
        const int heads = 2, hd = 8, din = 6;
        var g = new Generator(9, CPU);
        var wMeta = randn(new long[] { heads * hd, din }, generator: g);
        var x = randn(new long[] { 5, din }, generator: g);
        var freqs = RotaryEmbedding.InverseFrequencies(hd, 500000, null);
        var qMeta = x.matmul(wMeta.t()).view(5, heads, hd);
        var rotMeta = zeros_like(qMeta);
        for (int t = 0; t < 5; t++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < hd / 2; i++)
                {
                    double a = t * freqs[i], re = qMeta[t, h, 2 * i].item<float>(), im = qMeta[t, h, 2 * i + 1].item<float>();
                    rotMeta[t, h, 2 * i] = tensor((float)(re * Math.Cos(a) - im * Math.Sin(a)));
                    rotMeta[t, h, 2 * i + 1] = tensor((float)(re * Math.Sin(a) + im * Math.Cos(a)));
                }
        var wHf = MetaLayout.MetaToHfRows(wMeta, heads);
        var qHf = x.matmul(wHf.t()).view(1, 5, heads, hd).transpose(1, 2);           // [1, H, T, hd]
        using var rope = new RotaryEmbedding(hd, 500000, null, 64);
        var (cos, sin) = rope.Tables(arange(5, dtype: ScalarType.Int64).unsqueeze(0), 4);
        var rotHf = RotaryEmbedding.Apply(qHf, cos, sin).transpose(1, 2)[0];         // [T, H, hd]
        // Same rotation, rows in HF order: [r0, r2, r4, …, r1, r3, …] per head.
        var expected = rotMeta.view(5, heads, hd / 2, 2).transpose(2, 3).reshape(5, heads, hd);
        Assert.True((expected - rotHf).abs().max().item<float>() < 1e-5f);
        Assert.True(MetaLayout.HfToMetaRows(wHf, heads).equal(wMeta).all().item<bool>());
    }

    [Fact]
    public void SaveLoadRoundTripIsBitExactIncludingBf16()
    {
        using var m = TestModels.Model(TestModels.Small(), 2);
        string dir = TestModels.TempDir();
        m.Save(dir, CheckpointLayout.HuggingFace, maxShardBytes: 200_000);
        Assert.True(File.Exists(Path.Combine(dir, "model.safetensors.index.json")));
        using var back = LlamaForCausalLM.FromPretrained(dir);
        var src = m.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in back.named_parameters())
            Assert.True(src[name].equal(p).all().item<bool>(), name);

        string bdir = TestModels.TempDir();
        m.Save(bdir, CheckpointLayout.HuggingFace, ScalarType.BFloat16);
        using var bf = LlamaForCausalLM.FromPretrained(bdir, CPU, ScalarType.BFloat16);
        string bdir2 = TestModels.TempDir();
        bf.Save(bdir2);
        Assert.Equal(File.ReadAllBytes(Path.Combine(bdir, "model.safetensors")), File.ReadAllBytes(Path.Combine(bdir2, "model.safetensors")));
    }

    [Fact]
    public void StrictLoadingNamesEveryBadKey()
    {
        using var m = TestModels.Model(TestModels.Small(), 2);
        string dir = TestModels.TempDir();
        m.Save(dir);
        // Rewrite the weights: drop one key, add one, change one shape.
        var tensors = m.named_parameters().Where(p => p.name != "model.norm.weight")
            .Select(p => new KeyValuePair<string, Tensor>(p.name, p.name == "model.layers.0.mlp.up_proj.weight" ? zeros(3, 3) : p.parameter))
            .Append(new KeyValuePair<string, Tensor>("model.extra.weight", zeros(2)));
        SafeTensorsWriter.Save(Path.Combine(dir, "model.safetensors"), tensors);
        var e = Assert.Throws<CheckpointFormatException>(() => LlamaForCausalLM.FromPretrained(dir));
        Assert.Contains("model.norm.weight", e.Message);
        Assert.Contains("model.extra.weight", e.Message);
        Assert.Contains("model.layers.0.mlp.up_proj.weight", e.Message);
    }

    [Fact]
    public void PublishedPresetsHaveThePublishedParameterCounts()
    {
        var meta = torch.device(DeviceType.META);
        foreach (var (name, expected) in new[] { ("llama3.2-1b", 1_235_814_400L), ("llama3.2-3b", 3_212_749_824L), ("llama3.1-8b", 8_030_261_248L) })
        {
            using var m = LlamaForCausalLM.Create(TextPresets.Get(name), meta);
            Assert.Equal(expected, m.ParameterCount());
            Assert.Equal(expected, TextPresets.Get(name).ParameterCount());
        }
        Assert.Equal(70_553_706_496L, TextPresets.Get("llama3.1-70b").ParameterCount());
        Assert.Equal(405_853_388_800L, TextPresets.Get("llama3.1-405b").ParameterCount());
        Assert.Equal(14336, TextPresets.Get("llama3.1-8b").IntermediateSize);
        Assert.Equal(53248, TextPresets.Get("llama3.1-405b").IntermediateSize);
    }

    [Fact]
    public void ConfigsAreParsedStrictly()
    {
        string dir = TestModels.TempDir();
        string p = Path.Combine(dir, "config.json");
        // A Llama 3.2 1B config.json as published.
        File.WriteAllText(p, """
        {"architectures":["LlamaForCausalLM"],"attention_bias":false,"attention_dropout":0.0,"bos_token_id":128000,
         "eos_token_id":[128001,128008,128009],"head_dim":64,"hidden_act":"silu","hidden_size":2048,"initializer_range":0.02,
         "intermediate_size":8192,"max_position_embeddings":131072,"mlp_bias":false,"model_type":"llama","num_attention_heads":32,
         "num_hidden_layers":16,"num_key_value_heads":8,"pretraining_tp":1,"rms_norm_eps":1e-05,
         "rope_scaling":{"factor":32.0,"high_freq_factor":4.0,"low_freq_factor":1.0,"original_max_position_embeddings":8192,"rope_type":"llama3"},
         "rope_theta":500000.0,"tie_word_embeddings":true,"torch_dtype":"bfloat16","transformers_version":"4.45.0.dev0","use_cache":true,"vocab_size":128256}
        """);
        var c = LlamaConfigJson.ReadHuggingFace(p);
        Assert.Equal(TextPresets.Get("llama3.2-1b") with { EosTokenIds = c.EosTokenIds }, c with { EosTokenIds = c.EosTokenIds });
        Assert.Equal(new RopeScaling(32, 1, 4, 8192), c.RopeScaling);

        void Bad(string json, string expect)
        {
            File.WriteAllText(p, json);
            var e = Assert.Throws<ConfigException>(() => LlamaConfigJson.ReadHuggingFace(p));
            Assert.Contains(expect, e.Message);
            Assert.Contains(p, e.Message);
        }
        const string ok = "\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"intermediate_size\":128,\"vocab_size\":100";
        Bad("{" + ok + ",\"surprise\":1}", "unknown field 'surprise'");
        Bad("{" + ok + ",\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":2}}", "rope_type 'yarn'");
        Bad("{" + ok + ",\"rms_norm_eps\":\"small\"}", "rms_norm_eps");
        Bad("{" + ok + ",\"num_key_value_heads\":3}", "not divisible");
        Bad("{" + ok + ",\"attention_bias\":true}", "attention_bias");
        Bad("{\"hidden_size\":64}", "is missing");
        Bad("{" + ok.Replace("\"hidden_size\":64", "\"hidden_size\":1e300") + "}", "hidden_size");
        Bad(new string('[', 100) + new string(']', 100), "invalid JSON");
        Bad("{" + ok + ",\"rope_theta\":-5}", "rope_theta");
    }

    [Fact]
    public void AbsurdDimensionsAreRefusedBeforeAllocating()
    {
        var huge = TextPresets.Get("llama3.1-405b");
        var e = Assert.Throws<ConfigException>(() => LlamaForCausalLM.Create(huge, CPU));
        Assert.Contains("GB", e.Message);
        // On the meta device nothing is allocated, so the shape still builds (to count parameters).
        using var meta = LlamaForCausalLM.Create(TextPresets.Get("llama3.1-8b"), torch.device(DeviceType.META));
        Assert.Equal(8_030_261_248L, meta.ParameterCount());
    }

    [Fact]
    public void MetaParamsUseTheFfnRule()
    {
        string p = Path.Combine(TestModels.TempDir(), "params.json");
        File.WriteAllText(p, """{"dim": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 8, "vocab_size": 128256, "ffn_dim_multiplier": 1.3, "multiple_of": 1024, "norm_eps": 1e-05, "rope_theta": 500000.0, "use_scaled_rope": true}""");
        var c = LlamaConfigJson.ReadMeta(p);
        Assert.Equal(14336, c.IntermediateSize);
        Assert.Equal(new RopeScaling(8, 1, 4, 8192), c.RopeScaling);
        var back = LlamaConfigJson.FromMeta(LlamaConfigJson.ToMeta(c), "roundtrip");
        Assert.Equal(c.IntermediateSize, back.IntermediateSize);
    }
}

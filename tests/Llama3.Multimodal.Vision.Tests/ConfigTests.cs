using System.Text.Json.Nodes;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;

namespace Llama3.Multimodal.Vision.Tests;

public class ConfigTests
{
    [Fact]
    public void FusionScheduleMatchesReleasedIndices()
    {
        Assert.Equal(new[] { 3, 8, 13, 18, 23, 28, 33, 38 }, VisionLanguageConfig.FusionSchedule(32, 8));
        Assert.Equal(Enumerable.Range(0, 20).Select(k => 3 + 5 * k), VisionLanguageConfig.FusionSchedule(80, 20));
        Assert.Equal(new[] { 1, 4 }, VisionLanguageConfig.FusionSchedule(4, 2));
    }

    [Theory]
    [InlineData("tiny-vision")]
    [InlineData("llama3.2-11b-vision")]
    [InlineData("llama3.2-90b-vision")]
    public void ConfigJsonRoundTrips(string preset)
    {
        var c = VisionPresets.Get(preset);
        var json = VisionLanguageConfigJson.ToHuggingFace(c).ToJsonString();
        var back = VisionLanguageConfigJson.Parse(LlamaConfigJson.ParseObject(json, "mem"), "mem");
        Assert.Equal(c, back);
    }

    // Shape of the hub's Llama-3.2-11B-Vision-Instruct config.json (HF text_config / vision_config keys and values), including
    // generic transformers fields that carry no model shape.
    const string HubLike = """
    {
      "architectures": ["MllamaForConditionalGeneration"], "image_token_index": 128256, "model_type": "mllama",
      "torch_dtype": "bfloat16", "transformers_version": "4.45.0.dev0",
      "text_config": {
        "_name_or_path": "", "add_cross_attention": false, "architectures": null, "bos_token_id": 128000,
        "cross_attention_layers": [3, 8, 13, 18, 23, 28, 33, 38], "dropout": 0, "eos_token_id": [128001, 128008, 128009],
        "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
        "max_position_embeddings": 131072, "model_type": "mllama_text_model", "num_attention_heads": 32,
        "num_hidden_layers": 40, "num_key_value_heads": 8, "pad_token_id": 128004, "rms_norm_eps": 1e-05,
        "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "use_cache": true, "vocab_size": 128256,
        "temperature": 1.0, "top_k": 50, "top_p": 1.0, "id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}
      },
      "vision_config": {
        "attention_heads": 16, "hidden_act": "gelu", "hidden_size": 1280, "image_size": 560, "initializer_range": 0.02,
        "intermediate_layers_indices": [3, 7, 15, 23, 30], "intermediate_size": 5120, "max_num_tiles": 4,
        "model_type": "mllama_vision_model", "norm_eps": 1e-05, "num_channels": 3, "num_global_layers": 8,
        "num_hidden_layers": 32, "patch_size": 14,
        "supported_aspect_ratios": [[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [4, 1]],
        "torch_dtype": "bfloat16", "vision_output_dim": 7680
      }
    }
    """;

    [Fact]
    public void HubConfigParsesToThe11BPreset()
    {
        var c = VisionLanguageConfigJson.Parse(LlamaConfigJson.ParseObject(HubLike, "hub"), "hub");
        Assert.Equal(VisionPresets.Get("llama3.2-11b-vision"), c);
    }

    [Theory]
    [InlineData("\"vision_config\": {", "\"vision_config\": { \"mystery\": 1,", "mystery")]
    [InlineData("\"dropout\": 0", "\"dropout\": 0, \"bogus_field\": true", "bogus_field")]
    [InlineData("\"vision_output_dim\": 7680", "\"vision_output_dim\": 7000", "vision_output_dim")]
    [InlineData("\"hidden_act\": \"gelu\"", "\"hidden_act\": \"quick_gelu\"", "quick_gelu")]
    [InlineData("[3, 8, 13, 18, 23, 28, 33, 38]", "[3, 8, 13, 18, 23, 28, 33, 40]", "40")]
    [InlineData("\"model_type\": \"mllama\"", "\"model_type\": \"llava\"", "llava")]
    public void StrictParsingNamesTheBadField(string find, string replace, string named)
    {
        string bad = HubLike.Replace(find, replace);
        Assert.NotEqual(HubLike, bad);
        var e = Assert.Throws<ConfigException>(() => VisionLanguageConfigJson.Parse(LlamaConfigJson.ParseObject(bad, "hub.json"), "hub.json"));
        Assert.Contains(named, e.Message);
        Assert.Contains("hub.json", e.Message);
    }

    [Fact]
    public void PaperVariantIsExpressibleByConfig()
    {
        // Paper: 224-px input (16×16 patches), cross-attention after every 4th self-attention layer.
        var c = VisionPresets.Get("tiny-vision") with
        {
            Text = VisionPresets.Get("tiny-vision").Text with { NumLayers = 10 },
            Vision = VisionPresets.Get("tiny-vision").Vision with { ImageSize = 224 },
            CrossAttentionLayers = VisionLanguageConfig.FusionSchedule(8, 2),
        };
        Assert.Equal(new[] { 3, 8 }, c.CrossAttentionLayers);
        Assert.Equal(257, c.Vision.TokensPerTile);
        Assert.Equal(264, c.Vision.PaddedTokensPerTile);
        var back = VisionLanguageConfigJson.Parse(VisionLanguageConfigJson.ToHuggingFace(c), "paper");
        Assert.Equal(c, back);
        using var m = VisionLanguageModel.Create(c).InitializeWeights(1);
        var img = TestSupport.Scene(300, 200, 1);
        using var batch = m.Preprocessor.Batch(new[] { (IReadOnlyList<RgbImage>)new[] { img } });
        using var states = m.EncodeImages(batch);
        Assert.Equal(new long[] { 1, 4 * 257, 64 }, states.shape);
        Assert.IsType<CrossAttentionDecoderLayer>(m.language_model.model.layers[3]);
        Assert.IsType<CrossAttentionDecoderLayer>(m.language_model.model.layers[8]);
        Assert.IsType<LlamaDecoderLayer>(m.language_model.model.layers[4]);
    }
}

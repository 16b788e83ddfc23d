using Llama3.Multimodal.Tests.Shared;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision.Tests;

public class ModelTests
{
    const int Img = 128256;

    /// <summary>The text-only Llama with the VLM's self-attention layers, embedding and head copied over.</summary>
    static LlamaForCausalLM TextOnly(VisionLanguageModel m)
    {
        var cfg = m.Config.Text with { NumLayers = m.Config.SelfAttentionLayers };
        var t = LlamaForCausalLM.Create(cfg);
        var src = m.language_model.model.layers.Where(l => l is LlamaDecoderLayer).ToList();
        using var _ = no_grad();
        for (int i = 0; i < src.Count; i++)
        {
            var from = src[i].named_parameters().ToDictionary(x => x.name, x => x.parameter);
            foreach (var (name, p) in t.model.layers[i].named_parameters()) p.copy_(from[name]);
        }
        t.model.embed_tokens.weight.copy_(m.language_model.model.embed_tokens.weight);
        t.model.norm.weight.copy_(m.language_model.model.norm.weight);
        t.lm_head!.weight.copy_(m.language_model.lm_head!.weight);
        return t;
    }

    static List<int> Prompt(VisionLanguageModel m, int images, string text = "What is in this picture?") =>
        VisionPrompt.EncodeInstruct(m.Tokenizer, text, images);

    static ImageBatch Images(VisionLanguageModel m, params RgbImage[][] rows) =>
        m.Preprocessor.Batch(rows.Select(r => (IReadOnlyList<RgbImage>)r).ToList());

    [Fact]
    public void ZeroGatesMakeLogitsIdenticalToTheTextOnlyModel()
    {
        using var m = TestSupport.Tiny(11, gates: false);   // fresh init: every tanh gate is 0
        using var text = TextOnly(m);
        var ids = Prompt(m, 1);
        Assert.Contains(Img, ids);
        using var batch = Images(m, new[] { TestSupport.Scene(200, 150, 1) });
        using var _ = no_grad();
        using var idT = tensor(ids.Select(i => (long)i).ToArray(), new long[] { 1, ids.Count });
        foreach (bool hf in new[] { false, true })
        {
            m.HfCompatibleCrossAttention = hf;
            using var a = m.Forward(idT, batch);
            using var b = text.Forward(idT);
            Assert.True(a.equal(b).all().item<bool>(), $"hf={hf}: logits differ from the text-only model");
        }
        // With gates opened the image changes the logits (so the comparison above can fail).
        TestSupport.SetGates(m, 0.5);
        using var c = m.Forward(idT, batch);
        using var d = text.Forward(idT);
        Assert.False(c.allclose(d, 1e-3, 1e-3));
    }

    [Fact]
    public void TextOnlyInputSkipsTheAdapters()
    {
        using var m = TestSupport.Tiny(12);
        using var text = TextOnly(m);
        var ids = VisionPrompt.EncodeInstruct(m.Tokenizer, "Hello there", 0);
        using var _ = no_grad();
        using var idT = tensor(ids.Select(i => (long)i).ToArray(), new long[] { 1, ids.Count });
        using var a = m.Forward(idT, null);
        using var b = text.Forward(idT);
        Assert.True(a.equal(b).all().item<bool>());
    }

    [Fact]
    public void RowsBeforeTheFirstImageFollowMetaByDefaultAndHfOnRequest()
    {
        using var m = TestSupport.Tiny(13);
        using var text = TextOnly(m);
        var ids = Prompt(m, 1);
        int first = ids.IndexOf(Img);
        Assert.True(first > 1);
        using var batch = Images(m, new[] { TestSupport.Scene(200, 150, 2) });
        using var _ = no_grad();
        using var idT = tensor(ids.Select(i => (long)i).ToArray(), new long[] { 1, ids.Count });
        using var reference = text.Forward(idT).narrow(1, 0, first);
        m.HfCompatibleCrossAttention = false;
        using var meta = m.Forward(idT, batch);
        // Meta: the adapters are the identity for rows that see no image, so those rows equal the text-only model.
        Assert.True(meta.narrow(1, 0, first).allclose(reference, 1e-5, 1e-5));
        Assert.False(meta.narrow(1, first, ids.Count - first).allclose(text.Forward(idT).narrow(1, first, ids.Count - first), 1e-3, 1e-3));
        m.HfCompatibleCrossAttention = true;
        using var hf = m.Forward(idT, batch);
        // transformers: uniform attention over all image tokens is added to those rows (issue #39379).
        Assert.False(hf.narrow(1, 0, first).allclose(reference, 1e-3, 1e-3));
    }

    [Fact]
    public void KvCachedDecodeWithImageEqualsFullForward()
    {
        using var m = TestSupport.Tiny(14);
        var ids = Prompt(m, 2, "<|image|>Compare this<|image|>with that.");
        var extra = new[] { 791, 2217, 374, 6437, 13 };
        var all = ids.Concat(extra).ToList();
        using var batch = Images(m, new[] { TestSupport.Scene(300, 120, 3), TestSupport.Scene(100, 260, 4) });
        using var _ = no_grad();
        using var full = m.Forward(tensor(all.Select(i => (long)i).ToArray(), new long[] { 1, all.Count }), batch);

        var ranges = new[] { CrossAttentionMask.ImageRanges(ids, Img) };
        using var states = m.EncodeImages(batch);
        using var cache = m.language_model.NewCache(1, all.Count);
        var media = m.CrossAttentionFor(ranges, batch.NumTiles, states, 0, ids.Count);
        using var pre = m.language_model.Forward(tensor(ids.Select(i => (long)i).ToArray(), new long[] { 1, ids.Count }),
            new ForwardOptions { Cache = cache, Media = new Dictionary<string, object> { [CrossAttentionInputs.MediaKey] = media } });
        Assert.True(pre.allclose(full.narrow(1, 0, ids.Count), 1e-4, 1e-4));
        for (int s = 0; s < extra.Length; s++)
        {
            // Decode steps pass no image states: the blocks reuse the K/V cached at prefill.
            var step = m.CrossAttentionFor(ranges, batch.NumTiles, null, cache.Length, 1);
            using var lg = m.language_model.Forward(tensor(new long[] { extra[s] }, new long[] { 1, 1 }),
                new ForwardOptions { Cache = cache, Media = new Dictionary<string, object> { [CrossAttentionInputs.MediaKey] = step } });
            Assert.True(lg.allclose(full.narrow(1, ids.Count + s, 1), 1e-4, 1e-4), $"decode step {s} differs");
        }
        Assert.NotNull(cache.GetStatic(m.Config.CrossAttentionLayers[0]).K);
    }

    [Fact]
    public void GreedyGenerationEqualsArgmaxOfFullForward()
    {
        using var m = TestSupport.Tiny(15);
        var img = TestSupport.Scene(220, 180, 5);
        var ids = Prompt(m, 1);
        var result = m.GenerateBatch(new[] { (IReadOnlyList<int>)ids }, new[] { (IReadOnlyList<RgbImage>)new[] { img } },
            new GenerationOptions { MaxNewTokens = 6, StopTokens = Array.Empty<int>() })[0];
        Assert.Equal(6, result.Tokens.Count);
        using var batch = Images(m, new[] { img });
        using var _ = no_grad();
        var all = ids.Concat(result.Tokens).ToList();
        using var full = m.Forward(tensor(all.Select(i => (long)i).ToArray(), new long[] { 1, all.Count }), batch);
        for (int s = 0; s < result.Tokens.Count; s++)
            Assert.Equal(result.Tokens[s], (int)full[0, ids.Count - 1 + s].argmax().item<long>());
    }

    [Fact]
    public void BeamSearchWithImagesMatchesACacheFreeReference()
    {
        using var m = TestSupport.Tiny(21);
        var a = TestSupport.Scene(220, 180, 3);
        var b = TestSupport.Scene(120, 240, 4);
        var p0 = Prompt(m, 1);
        var p1 = Prompt(m, 2, "Which is brighter?");
        var greedy = m.GenerateBatch(new[] { (IReadOnlyList<int>)p0 }, new[] { (IReadOnlyList<RgbImage>)new[] { a } },
            new GenerationOptions { MaxNewTokens = 5, StopTokens = Array.Empty<int>() })[0];
        // The greedy caption's second token stops a candidate, so some beams finish early.
        var stops = new HashSet<int> { greedy.Tokens[1] };
        var o = new GenerationOptions { MaxNewTokens = 5, NumBeams = 3, StopTokens = stops.ToList() };
        var rows = new[] { (IReadOnlyList<int>)p0, p1 };
        var images = new[] { (IReadOnlyList<RgbImage>)new[] { a }, new[] { a, b } };
        var batch = m.GenerateBatch(rows, images, o);
        // Each prompt of a batch gets what it gets alone.
        Assert.Equal(m.GenerateBatch(new[] { p1 }, new[] { images[1] }, o)[0].Tokens, batch[1].Tokens);
        using var _ = no_grad();
        using var pix = Images(m, new[] { a });
        var expected = ReferenceBeamSearch.Run(seq =>
        {
            var all = p0.Concat(seq).Select(x => (long)x).ToArray();
            using var logits = m.Forward(tensor(all, new long[] { 1, all.Length }), pix);
            return logits[0, all.Length - 1].log_softmax(-1).data<float>().ToArray();
        }, 3, o.MaxNewTokens, stops);
        Assert.Equal(expected, batch[0].Tokens);
    }

    [Fact]
    public void GenerationFromAPreparedImageBatchMatchesGenerationFromImages()
    {
        using var m = TestSupport.Tiny(18);
        var a = TestSupport.Scene(300, 200, 9);
        var ids = Prompt(m, 1);
        var opts = new GenerationOptions { MaxNewTokens = 5, StopTokens = Array.Empty<int>() };
        var fromImages = m.GenerateBatch(new[] { (IReadOnlyList<int>)ids }, new[] { (IReadOnlyList<RgbImage>)new[] { a } }, opts)[0];
        using var batch = Images(m, new[] { a });
        var fromBatch = m.GenerateBatch(new[] { (IReadOnlyList<int>)ids }, batch, opts)[0];
        Assert.Equal(fromImages.Tokens, fromBatch.Tokens);
        // A batch that does not fit the prompts is refused with the counts.
        var rows = Assert.Throws<ArgumentException>(() => m.GenerateBatch(new[] { (IReadOnlyList<int>)ids, ids }, batch, opts));
        Assert.Contains("2 prompts", rows.Message);
        var two = Prompt(m, 2);
        var count = Assert.Throws<ArgumentException>(() => m.GenerateBatch(new[] { (IReadOnlyList<int>)two }, batch, opts));
        Assert.Contains("2 <|image|> tokens but 1 images", count.Message);
    }

    [Fact]
    public void BatchWithDifferentImageCountsMatchesSinglePrompts()
    {
        using var m = TestSupport.Tiny(16);
        var a = TestSupport.Scene(300, 200, 6);
        var b = TestSupport.Scene(120, 240, 7);
        var p0 = Prompt(m, 2, "Which of these is brighter?");
        var p1 = VisionPrompt.EncodeInstruct(m.Tokenizer, "Tell me a short story about a lighthouse keeper.", 0);
        var p2 = Prompt(m, 1);
        var opts = new GenerationOptions { MaxNewTokens = 4, StopTokens = Array.Empty<int>() };
        var batch = m.GenerateBatch(new[] { (IReadOnlyList<int>)p0, p1, p2 },
            new[] { (IReadOnlyList<RgbImage>)new[] { a, b }, Array.Empty<RgbImage>(), new[] { b } }, opts);
        var s0 = m.GenerateBatch(new[] { (IReadOnlyList<int>)p0 }, new[] { (IReadOnlyList<RgbImage>)new[] { a, b } }, opts)[0];
        var s1 = m.GenerateBatch(new[] { (IReadOnlyList<int>)p1 }, new[] { (IReadOnlyList<RgbImage>)Array.Empty<RgbImage>() }, opts)[0];
        var s2 = m.GenerateBatch(new[] { (IReadOnlyList<int>)p2 }, new[] { (IReadOnlyList<RgbImage>)new[] { b } }, opts)[0];
        Assert.Equal(s0.Tokens, batch[0].Tokens);
        Assert.Equal(s1.Tokens, batch[1].Tokens);
        Assert.Equal(s2.Tokens, batch[2].Tokens);
    }

    [Fact]
    public void CaptionFromAnImageFile()
    {
        using var m = TestSupport.Tiny(17);
        string path = TestSupport.WritePng(TestSupport.TempDir(), "photo.png", 640, 480, 8);
        string text = m.Caption(path, "Describe the image.", new GenerationOptions { MaxNewTokens = 3 });
        Assert.NotNull(text);
        var r = m.Generate(new[] { path }, "Describe the image.", new GenerationOptions { MaxNewTokens = 3, StopTokens = Array.Empty<int>() });
        Assert.Equal(3, r.Tokens.Count);
        Assert.Throws<ArgumentException>(() => m.Generate(new[] { path }, "<|image|><|image|>two?", new GenerationOptions { MaxNewTokens = 1 }));
        string bad = Path.Combine(TestSupport.TempDir(), "broken.jpg");
        File.WriteAllBytes(bad, new byte[] { 0xFF, 0xD8, 0xFF, 0x00, 1, 2, 3 });
        var e = Assert.Throws<MediaDecodeException>(() => m.Caption(bad));
        Assert.Contains(bad, e.Message);
    }

    [Fact]
    public void InstructPromptFormatAndDecodingOfTheImageToken()
    {
        var tok = Llama3Tokenizer.Default;
        var ids = VisionPrompt.EncodeInstruct(tok, "Describe this image in two sentences", 1);
        var expected = new List<int> { tok.BosId, tok.StartHeaderId };
        expected.AddRange(tok.Encode("user"));
        expected.Add(tok.EndHeaderId);
        expected.AddRange(tok.Encode("\n\n"));
        expected.Add(Img);
        expected.AddRange(tok.Encode("Describe this image in two sentences"));
        expected.Add(tok.EotId);
        expected.Add(tok.StartHeaderId);
        expected.AddRange(tok.Encode("assistant"));
        expected.Add(tok.EndHeaderId);
        expected.AddRange(tok.Encode("\n\n"));
        Assert.Equal(expected, ids);
        Assert.Equal("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n<|image|>Describe this image in two sentences<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            VisionPrompt.Decode(tok, ids));
        Assert.Equal("user\n\nDescribe this image in two sentencesassistant\n\n", VisionPrompt.Decode(tok, ids, skipSpecial: true));
        // User text that spells <|image|> only becomes the image token where the formatter puts it.
        var completion = VisionPrompt.EncodeCompletion(tok, "If I had to write a haiku", 1);
        Assert.Equal(new[] { Img, tok.BosId }, completion.Take(2));   // as the HF Mllama processor: leading images before BOS
        Assert.Equal("<|image|><|begin_of_text|>If I had to write a haiku", VisionPrompt.Decode(tok, completion));
        var later = VisionPrompt.EncodeCompletion(tok, "A photo: <|image|> shows", 1);
        Assert.Equal(tok.BosId, later[0]);
        Assert.Equal("<|begin_of_text|>A photo: <|image|> shows", VisionPrompt.Decode(tok, later));
    }

    [Fact]
    public void ComponentsPartitionTheParameters()
    {
        using var m = TestSupport.Tiny(18);
        string[] parts = { "vision_model", "multi_modal_projector", "cross_attention_layers", "language_model" };
        var owner = new Dictionary<string, string>();
        foreach (var c in parts)
            foreach (var (name, _) in ModelComponents.ParametersOf(m, c))
                Assert.True(owner.TryAdd(name, c), $"{name} is in {c} and {owner.GetValueOrDefault(name)}");
        Assert.Equal(m.named_parameters().Select(np => np.name).OrderBy(n => n), owner.Keys.OrderBy(n => n));
        Assert.Equal("cross_attention_layers", owner["language_model.model.layers.1.cross_attn.q_proj.weight"]);
        Assert.Equal("cross_attention_layers", owner["language_model.model.layers.4.cross_attn_mlp_gate"]);
        Assert.Equal("language_model", owner["language_model.model.layers.0.self_attn.q_proj.weight"]);
        Assert.Equal("language_model", owner["language_model.model.embed_tokens.weight"]);
        Assert.Equal("vision_model", owner["vision_model.patch_embedding.weight"]);
        Assert.Equal("multi_modal_projector", owner["multi_modal_projector.weight"]);
        Assert.Equal(new[] { "language_model.model.embed_tokens.weight" }, ModelComponents.ParametersOf(m, "embed_tokens").Select(p => p.Name));
        Assert.Throws<ArgumentException>(() => ModelComponents.ParametersOf(m, "image_encoder"));
    }

    [Fact]
    public void FromTextModelKeepsTheTextModelsOutputs()
    {
        var tiny = VisionPresets.Get("tiny-vision");
        var textCfg = tiny.Text with { NumLayers = 4, ExtraEmbeddingRows = 0 };
        using var text = LlamaForCausalLM.Create(textCfg).InitializeWeights(5);
        var layers = VisionLanguageConfig.FusionSchedule(4, 2);
        using var m = VisionLanguageModel.FromTextModel(text, tiny.Vision, layers, seed: 6);
        Assert.Equal(layers, m.Config.CrossAttentionLayers);
        Assert.Equal(6, m.Config.Text.NumLayers);
        Assert.Equal(textCfg.VocabSize, m.Config.ImageTokenIndex);
        using var ids = torch.tensor(new long[] { 1, 5, 9, 2, 7 }).unsqueeze(0);
        using var a = text.Forward(ids);
        using var b = m.Forward(ids, null);
        Assert.True(a.equal(b).all().item<bool>());                                      // zero gates: the text model exactly
        Assert.True(text.model.embed_tokens.weight.equal(m.language_model.model.embed_tokens.weight.narrow(0, 0, textCfg.VocabSize)).all().item<bool>());
    }
}

using Llama3.Multimodal.Tests.Shared;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Video.Tests;

/// <summary>One tiny image-text model (tiny-vision, seed 11) saved once, and a clip rendered by ffmpeg, shared by the tests.</summary>
public sealed class TinyModels : IDisposable
{
    public string BaseDir { get; } = Path.Combine(Path.GetTempPath(), "llama3mm-video-base-" + Guid.NewGuid().ToString("N"));
    public VisionLanguageModel Base { get; }
    public string Clip { get; } = Clips.MovingSquare("square40.mp4", 40, "-c:v", "libx264", "-pix_fmt", "yuv420p");

    public TinyModels()
    {
        Base = VisionLanguageModel.Create(VisionPresets.Get("tiny-vision")).InitializeWeights(11);
        Base.Save(BaseDir);
    }

    public VideoLanguageModel NewVideoModel(long seed = 5) =>
        VideoLanguageModel.FromImageModel(BaseDir, VideoPresets.Get("tiny-video").Video, seed);

    public void Dispose()
    {
        Base.Dispose();
        try { Directory.Delete(BaseDir, true); } catch (IOException) { }
    }
}

public class VideoLanguageModelTests : IClassFixture<TinyModels>
{
    readonly TinyModels _m;
    public VideoLanguageModelTests(TinyModels m) => _m = m;

    static readonly int Video = VideoConfig.DefaultVideoTokenId, Image = 128256;

    // <|begin_of_text|> <|image|> "a" "b" <|video|> "c" "d" "e"   (plain token ids below 128000 stand for text)
    static Tensor Ids() => torch.tensor(new long[] { 128000, Image, 64, 65, Video, 66, 67, 68 }, new long[] { 1, 8 });

    static ImageBatch OneImage(VideoLanguageModel m, VideoFrames frames)
    {
        using var px = frames.Pixels[3].contiguous();
        var img = new RgbImage(frames.Width, frames.Height, px.bytes.ToArray());
        return m.Preprocessor.Batch(new[] { (IReadOnlyList<RgbImage>)new[] { img } });
    }

    static void SetVideoGates(VideoLanguageModel m, double value)
    {
        using var noGrad = torch.no_grad();
        foreach (var (name, p) in m.named_parameters())
            if (name.StartsWith("video_model.", StringComparison.Ordinal) && name.Contains("_gate")) p.fill_(value);
    }

    [Fact]
    public void VideoLayersGoBeforeEveryFourthImageLayer()
    {
        var cfg = VideoPresets.Get("llama3.2-11b-video");
        Assert.Null(cfg.Video.CrossAttentionLayers);
        Assert.Equal(new[] { 18, 38 }, cfg.VideoCrossAttentionLayers);     // the 4th and 8th of [3, 8, …, 38]
        Assert.Equal(5, VideoPresets.Get("llama3.2-90b-video").VideoCrossAttentionLayers.Count);
        Assert.Equal(new[] { 4 }, VideoPresets.Get("tiny-video").VideoCrossAttentionLayers);   // the 2nd of [1, 4]
        using var m = VideoLanguageModel.Create(cfg, torch.device(DeviceType.META));
        Assert.Equal(40, m.language_model.model.layers.Count);                // the image-text stack, its numbering kept
        Assert.Equal(42, m.language_model.model.CacheSlots);                  // + one KV-cache slot per video layer
        Assert.Equal(2, m.video_model.cross_attention_layers.Count);
    }

    [Fact]
    public void ComposesTheImageModelAndDeclaresItsComponents()
    {
        using var m = _m.NewVideoModel();
        Assert.Same(m.ImageModel.language_model, m.language_model);
        Assert.Same(m.ImageModel.vision_model, m.vision_model);
        var owner = new Dictionary<string, string>();
        foreach (var c in new[] { "vision_model", "multi_modal_projector", "cross_attention_layers", "language_model", "video_aggregator", "video_cross_attention_layers" })
            foreach (var (name, _) in ModelComponents.ParametersOf(m, c))
                Assert.True(owner.TryAdd(name, c), $"{name} is in {c} and {owner.GetValueOrDefault(name)}");
        Assert.Equal(m.named_parameters().Select(np => np.name).Order(), owner.Keys.Order());
        Assert.Equal("video_cross_attention_layers", owner["video_model.cross_attention_layers.0.cross_attn.q_proj.weight"]);
        Assert.Equal("video_aggregator", owner["video_model.aggregator.latents"]);
        Assert.Equal(ModelComponents.ParametersOf(m, "video_model").Count, owner.Values.Count(v => v.StartsWith("video_", StringComparison.Ordinal)));
    }

    [Fact]
    public void FullSizePresetsBuildOnTheMetaDevice()
    {
        var cfg = VideoPresets.Get("llama3.2-11b-video");
        using var m = VideoLanguageModel.Create(cfg, torch.device(DeviceType.META));
        long d = 4096, kv = 1024, ffn = 14336;
        long layer = 2 * d * d + 2 * d * kv + 2 * 128 + 2 * d + 3 * d * ffn + 2;     // q,o + k,v + q/k norms + 2 norms + MLP + 2 gates
        long agg = new TemporalAggregator(cfg.Video.Aggregator, torch.device(DeviceType.META)).ParameterCount();
        Assert.Equal(2 * layer + agg, m.VideoParameterCount());
        Assert.InRange(m.VideoParameterCount(), 0.6e9, 0.8e9);                         // paper: 0.6B for the 8B model
        using var vlm = VisionLanguageModel.Create(cfg.Base, torch.device(DeviceType.META));
        Assert.Equal(vlm.ParameterCount() + m.VideoParameterCount(), m.ParameterCount());
    }

    [Fact]
    public void ZeroVideoGatesLeaveTheImageTextLogitsUnchanged()
    {
        using var m = _m.NewVideoModel();
        using var frames = m.ReadFrames(_m.Clip);
        Assert.Equal(new long[] { 8, 224, 224, 3 }, frames.Pixels.shape);
        using var ids = Ids();
        using var images = OneImage(m, frames);
        using var noGrad = torch.no_grad();
        using var video = m.EncodeVideo(frames);
        Assert.Equal(new long[] { 1, 2 * 16, 64 }, video.shape);                        // 8 frames / 4 per group × 16 latents
        using var expected = _m.Base.Forward(ids, images);
        using var got = m.Forward(ids, images, video);
        Assert.True(got.allclose(expected, rtol: 1e-5, atol: 1e-5), $"max diff {(got - expected).abs().max().item<float>()}");

        // the same model with open gates: rows before <|video|> (0..3) unchanged, rows from it on changed
        SetVideoGates(m, 0.5);
        using var open = m.Forward(ids, images, video);
        Assert.True(open.narrow(1, 0, 4).allclose(expected.narrow(1, 0, 4), rtol: 1e-5, atol: 1e-5));
        for (int t = 4; t < 8; t++)
            Assert.False(open.select(1, t).allclose(expected.select(1, t), rtol: 1e-4, atol: 1e-4), $"row {t} ignores the video");
    }

    [Fact]
    public void VideoLayersCanStartAsCopiesOfTheImageLayerTheyPrecede()
    {
        using var m = _m.NewVideoModel(seed: 13).CopyImageCrossAttentionIntoVideoLayers();
        int i = Assert.Single(m.Config.VideoCrossAttentionLayers);
        var image = m.language_model.model.layers[i].named_parameters().ToDictionary(p => p.name, p => p.parameter);
        int copied = 0;
        foreach (var (name, p) in m.video_model.cross_attention_layers[0].named_parameters())
        {
            if (name.EndsWith("_gate", StringComparison.Ordinal)) { Assert.Equal(0f, p.abs().max().item<float>()); continue; }
            Assert.True(p.allclose(image[name], rtol: 0, atol: 0), name);
            copied++;
        }
        Assert.True(copied >= 8, $"{copied} tensors copied");
        // Gates still closed: exactly the image model; the video layer's weights are its own (a copy, not shared).
        using var frames = m.ReadFrames(_m.Clip);
        using var ids = Ids();
        using var images = OneImage(m, frames);
        using var noGrad = torch.no_grad();
        using var video = m.EncodeVideo(frames);
        using var expected = _m.Base.Forward(ids, images);
        using var got = m.Forward(ids, images, video);
        Assert.True(got.allclose(expected, rtol: 1e-5, atol: 1e-5));
        var (qName, q) = m.video_model.cross_attention_layers[0].named_parameters().First(p => p.name.EndsWith("q_proj.weight", StringComparison.Ordinal));
        q.add_(1.0);
        Assert.False(q.allclose(image[qName], rtol: 0, atol: 0));
    }

    [Fact]
    public void DifferentClipsGiveDifferentLogitsOnceGatesOpen()
    {
        using var m = _m.NewVideoModel(seed: 9);
        SetVideoGates(m, 1.0);
        using var frames = m.ReadFrames(_m.Clip);
        using var noGrad = torch.no_grad();
        using var video = m.EncodeVideo(frames);
        string colourful = Clips.Render("testsrc.mp4", "-f", "lavfi", "-i", "testsrc=size=256x64:rate=10:duration=2", "-c:v", "libx264", "-pix_fmt", "yuv420p");
        using var otherFrames = m.ReadFrames(colourful);
        using var other = m.EncodeVideo(otherFrames);
        using var ids = torch.tensor(new long[] { 128000, Video, 64, 65 }, new long[] { 1, 4 });
        using var a = m.Forward(ids, null, video);
        using var b = m.Forward(ids, null, other);
        double diff = (a.select(1, 3) - b.select(1, 3)).abs().max().item<float>();
        Assert.True(diff > 1e-4, $"max logit difference {diff}");
        Assert.True(a.narrow(1, 0, 1).allclose(b.narrow(1, 0, 1)));                     // the row before <|video|> cannot see it
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    public void GroupEmbeddingsLetTheVideoLayersTellTheHalvesOfAClipApart(int maxGroups)
    {
        var cfg = VideoPresets.Get("tiny-video").Video;
        Assert.Equal(4, cfg.Aggregator.MaxGroups);
        using var m = VideoLanguageModel.FromImageModel(_m.BaseDir, cfg with { Aggregator = cfg.Aggregator with { MaxGroups = maxGroups } }, 13);
        m.video_model.aggregator.InitializeWeights(14, std: 0.5);                                // at std 0.02 the latents barely see the frames
        SetVideoGates(m, 1.0);
        using var frames = m.ReadFrames(_m.Clip);
        using var noGrad = torch.no_grad();
        using var feats = m.EncodeFrames(frames).unsqueeze(0);                                // [1, 8, T, D], two groups of 4
        using var swapped = torch.cat(new[] { feats.narrow(1, 4, 4), feats.narrow(1, 0, 4) }, 1);
        Tensor States(Tensor f) { using var a = m.video_model.aggregator.Forward(f); return a.reshape(1, -1, a.shape[3]); }
        using var inOrder = States(feats);
        using var reversed = States(swapped);
        using var ids = torch.tensor(new long[] { 128000, Video, 64, 65 }, new long[] { 1, 4 });
        using var a = m.Forward(ids, null, inOrder);
        using var b = m.Forward(ids, null, reversed);
        Assert.False(inOrder.allclose(reversed, rtol: 1e-3, atol: 1e-3));                 // the aggregated frames do depend on the frames
        bool same = a.allclose(b, rtol: 1e-5, atol: 1e-5);
        // Without group embeddings the video layers see the same set of aggregated tokens either way round.
        Assert.Equal(maxGroups == 0, same);
    }

    [Fact]
    public void BeamSearchMatchesACacheFreeReference()
    {
        using var m = _m.NewVideoModel(seed: 5);
        SetVideoGates(m, 0.8);
        var prompt = VideoPrompt.EncodeInstruct(m.Tokenizer, "What moves?");
        using var frames = m.ReadFrames(_m.Clip);
        var o = new GenerationOptions { MaxNewTokens = 4, NumBeams = 3, StopTokens = Array.Empty<int>() };
        var result = m.Generate(prompt, frames, o);
        using var noGrad = torch.no_grad();
        using var video = m.EncodeVideo(frames);
        var expected = ReferenceBeamSearch.Run(seq =>
        {
            var all = prompt.Concat(seq).Select(x => (long)x).ToArray();
            using var ids = torch.tensor(all, new long[] { 1, all.Length });
            using var logits = m.Forward(ids, null, video);
            return logits[0, -1].log_softmax(-1).data<float>().ToArray();
        }, 3, o.MaxNewTokens, new HashSet<int>());
        Assert.Equal(expected, result.Tokens);
    }

    [Fact]
    public void CachedGenerationMatchesFullForwardDecoding()
    {
        using var m = _m.NewVideoModel(seed: 3);
        SetVideoGates(m, 0.8);
        var prompt = VideoPrompt.EncodeInstruct(m.Tokenizer, "What moves?");
        Assert.Single(prompt, Video);
        using var frames = m.ReadFrames(_m.Clip);
        var result = m.Generate(prompt, frames, new GenerationOptions { MaxNewTokens = 4, StopTokens = Array.Empty<int>() });
        Assert.Equal(4, result.Tokens.Count);

        using var noGrad = torch.no_grad();
        using var video = m.EncodeVideo(frames);
        var seq = prompt.ToList();
        for (int i = 0; i < 4; i++)
        {
            using var ids = torch.tensor(seq.Select(x => (long)x).ToArray(), new long[] { 1, seq.Count });
            using var logits = m.Forward(ids, null, video);
            seq.Add((int)logits[0, -1].argmax().item<long>());
        }
        Assert.Equal(seq.Skip(prompt.Count), result.Tokens);
    }

    [Fact]
    public void GenerateFromAVideoFileRunsTheWholePipeline()
    {
        using var m = _m.NewVideoModel();
        var r = m.Generate(_m.Clip, "Describe the video.", new GenerationOptions { MaxNewTokens = 3, StopTokens = Array.Empty<int>() });
        Assert.Equal(3, r.Tokens.Count);
        Assert.True(r.PromptTokens > 5);
        Assert.Throws<MediaDecodeException>(() => m.Generate(Clips.PathOf("missing.mp4"), "Describe the video."));
    }

    [Fact]
    public void SaveAndLoadKeepTheBaseNumberingAndTheLogits()
    {
        using var m = _m.NewVideoModel(seed: 4);
        SetVideoGates(m, 0.3);
        string dir = Path.Combine(Path.GetTempPath(), "llama3mm-video-save-" + Guid.NewGuid().ToString("N"));
        try
        {
            m.Save(dir);
            using (var reader = CheckpointReader.Open(dir))
            {
                Assert.Contains("video_model.cross_attention_layers.0.cross_attn.q_proj.weight", reader.Keys);
                Assert.Contains("video_model.cross_attention_layers.0.cross_attn_attn_gate", reader.Keys);
                Assert.Contains("video_model.aggregator.layers.0.attn.q_proj.weight", reader.Keys);
                Assert.Contains("video_model.aggregator.time_embedding", reader.Keys);
                Assert.Contains("language_model.model.layers.4.cross_attn.q_proj.weight", reader.Keys);   // 2nd image layer, base index
                Assert.DoesNotContain(reader.Keys, k => k.StartsWith("language_model.model.layers.6.", StringComparison.Ordinal));
            }
            using var loaded = VideoLanguageModel.FromPretrained(dir);
            using var frames = m.ReadFrames(_m.Clip);
            using var noGrad = torch.no_grad();
            using var ids = torch.tensor(new long[] { 128000, Video, 64, 65 }, new long[] { 1, 4 });
            using var v1 = m.EncodeVideo(frames);
            using var v2 = loaded.EncodeVideo(frames);
            using var a = m.Forward(ids, null, v1);
            using var b = loaded.Forward(ids, null, v2);
            Assert.True(a.allclose(b, rtol: 1e-6, atol: 1e-6));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void VideoTokenAndVideoMustComeTogether()
    {
        using var m = _m.NewVideoModel();
        using var ids = torch.tensor(new long[] { 128000, Video, 64 }, new long[] { 1, 3 });
        Assert.Throws<ArgumentException>(() => m.Forward(ids));
        Assert.Throws<ArgumentException>(() => VideoPrompt.EncodeInstruct(m.Tokenizer, "<|video|>a<|video|>b"));
        using var text = torch.tensor(new long[] { 128000, 64, 65 }, new long[] { 1, 3 });
        using var expected = _m.Base.Forward(text, null);
        using var got = m.Forward(text);
        Assert.True(got.allclose(expected, rtol: 1e-5, atol: 1e-5));
    }

    [Fact]
    public void CompletionPromptsPutTheVideoBeforeBosAndPretrainedFoldersChooseThem()
    {
        using var m = _m.NewVideoModel();
        var tok = m.Tokenizer;
        var ids = VideoPrompt.EncodeCompletion(tok, "");
        Assert.Equal(new[] { Video, tok.BosId }, ids);                       // the layout the video recipe trains
        var later = VideoPrompt.EncodeCompletion(tok, "Clip: <|video|>");
        Assert.Equal(tok.BosId, later[0]);
        Assert.Equal(Video, later[^1]);
        Assert.Equal(VideoPrompt.EncodeInstruct(tok, "What moves?"), VideoPrompt.Encode(Vision.VisionPromptFormat.Instruct, tok, "What moves?"));
        string dir = Directory.CreateTempSubdirectory("l3mm-video-fmt").FullName;
        try
        {
            Assert.Equal(Vision.VisionPromptFormat.Instruct, Vision.VisionPrompt.FormatOf(dir));
            File.WriteAllText(Path.Combine(dir, "train_info.json"), "{\"recipe\": \"video\", \"tokenizer\": \"bytes\"}");
            Assert.Equal(Vision.VisionPromptFormat.Instruct, Vision.VisionPrompt.FormatOf(dir));     // recipes are not read
            m.PromptFormat = Vision.VisionPromptFormat.Completion;
            m.Save(dir);
            Assert.Equal(Vision.VisionPromptFormat.Completion, Vision.VisionPrompt.FormatOf(dir));
            using (var back = VideoLanguageModel.FromPretrained(dir)) Assert.Equal(Vision.VisionPromptFormat.Completion, back.PromptFormat);
            File.WriteAllText(Path.Combine(dir, "generation_config.json"), "{\"prompt_format\": \"chat\"}");
            Assert.Contains("prompt_format", Assert.Throws<CheckpointFormatException>(() => Vision.VisionPrompt.FormatOf(dir)).Message);
            File.WriteAllText(Path.Combine(dir, "generation_config.json"), "{\"prompt_format\": ");
            Assert.Throws<CheckpointFormatException>(() => Vision.VisionPrompt.FormatOf(dir));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void ImageModelFolderWithoutTheExpectedKeysIsRejected()
    {
        var e = Assert.Throws<CheckpointFormatException>(() =>
            VideoLanguageModel.FromPretrained(_m.BaseDir));
        Assert.Contains("video_config.json", e.Message);
    }

    [Fact]
    public void LoadBaseWeightsReplacesTheImageModelAndKeepsTheVideoAdapter()
    {
        using var video = _m.NewVideoModel(seed: 7);
        var before = video.named_parameters().ToDictionary(np => np.name, np => np.parameter.detach().clone());
        string other = Path.Combine(Path.GetTempPath(), "llama3mm-video-other-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var finetuned = VisionLanguageModel.Create(VisionPresets.Get("tiny-vision")).InitializeWeights(12)) finetuned.Save(other);
            using var expected = VideoLanguageModel.FromImageModel(other, VideoPresets.Get("tiny-video").Video, 7);
            var want = expected.named_parameters().ToDictionary(np => np.name, np => np.parameter);
            video.LoadBaseWeights(other);
            int changed = 0;
            foreach (var (name, p) in video.named_parameters())
            {
                if (name.StartsWith("video_model.", StringComparison.Ordinal)) Assert.True(Same(p, before[name]), name);          // the adapter is kept
                else
                {
                    Assert.True(Same(p, want[name]), name);                                           // the base is the other folder's
                    if (!Same(p, before[name])) changed++;
                }
            }
            Assert.True(changed > 10, $"{changed} base tensors changed");
        }
        finally
        {
            foreach (var t in before.Values) t.Dispose();
            try { Directory.Delete(other, true); } catch (IOException) { }
        }
    }

    [Fact]
    public void LoadBaseWeightsRefusesAnotherBaseModelAndChangesNothing()
    {
        using var video = _m.NewVideoModel();
        var before = video.named_parameters().ToDictionary(np => np.name, np => np.parameter.detach().clone());
        string other = Path.Combine(Path.GetTempPath(), "llama3mm-video-wider-" + Guid.NewGuid().ToString("N"));
        try
        {
            var cfg = VisionPresets.Get("tiny-vision");
            cfg = cfg with { Text = cfg.Text with { IntermediateSize = cfg.Text.IntermediateSize * 2 } };
            using (var wider = VisionLanguageModel.Create(cfg).InitializeWeights(3)) wider.Save(other);
            var e = Assert.Throws<CheckpointFormatException>(() => video.LoadBaseWeights(other));
            Assert.Contains(other, e.Message);
            Assert.Throws<CheckpointFormatException>(() => video.LoadBaseWeights(Path.Combine(other, "missing")));
            foreach (var (name, p) in video.named_parameters()) Assert.True(Same(p, before[name]), name);
        }
        finally
        {
            foreach (var t in before.Values) t.Dispose();
            try { Directory.Delete(other, true); } catch (IOException) { }
        }
    }

    static bool Same(Tensor a, Tensor b)
    {
        using var scope = torch.NewDisposeScope();
        return a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();
    }
}

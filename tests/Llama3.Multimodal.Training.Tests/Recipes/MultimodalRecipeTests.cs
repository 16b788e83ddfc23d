using System.Text.Json.Nodes;

namespace Llama3.Multimodal.Training.Tests.Recipes;

/// <summary>
/// Each multimodal recipe on tiny real media: the loss falls, components the recipe freezes stay bit-identical while the
/// trainable ones change, and N steps + resume + N steps equals 2N steps exactly.
/// </summary>
public class MultimodalRecipeTests
{
    static TrainConfig Cfg(string recipe, long steps, params string[] extra)
    {
        var sets = recipe switch
        {
            "vision-stage1" or "vision-stage2" => new[] { "optim.lr=0.01", "data.seq_len=96" },
            "video" => new[] { "optim.lr=0.01", "data.seq_len=128", "video.num_frames=4", "video.frames_per_group=4" },
            "speech-stage1" => new[] { "optim.lr=0.01" },
            _ => new[] { "optim.lr=0.01", "data.seq_len=400", "model.max_position_embeddings=512" },
        };
        return MediaTestData.Config(recipe, steps, sets.Concat(extra).ToArray());
    }

    [Theory]
    [InlineData("vision-stage1", new[] { "vision_model.", "multi_modal_projector." }, 4, 0.97)]
    [InlineData("vision-stage2", new[] { "vision_model.", "multi_modal_projector." }, 4, 0.97)]
    [InlineData("video", new[] { "video_model.aggregator." }, 4, 0.97)]
    [InlineData("video", new[] { "video_model.aggregator." }, 4, 0.97, "video.aggregator_merge=\"per_position\"")]
    [InlineData("video", new[] { "video_model.aggregator." }, 4, 0.97, "video.aggregator_place_code=true", "video.aggregator_merge=\"per_position\"")]
    [InlineData("speech-stage1", new[] { "encoder.layers.", "best_rq.heads." }, 4, 0.97)]
    [InlineData("speech-stage2", new[] { "speech_model.encoder.layers.", "speech_model.adapter." }, 4, 0.99)]
    [InlineData("speech-stage2", new[] { "speech_model.encoder.layers.", "speech_model.adapter." }, 4, 0.99, "speech.finetune.spec_augment=true")]
    [InlineData("speech-stage2", new[] { "speech_model.encoder.layers.", "speech_model.adapter." }, 4, 0.99, "speech.finetune.speed_perturb=[0.9,1.0,1.1]")]
    public void TrainsOnlyItsComponentsAndResumesExactly(string recipe, string[] mustTrain, int n, double ratio, string set = "", string set2 = "")
    {
        string[] sets = new[] { set, set2 }.Where(x => x.Length > 0).ToArray();
        string dir = TestRuns.TempDir();
        Dictionary<string, float[]> before, after;
        IReadOnlyList<string> trainable;
        TrainResult full;
        using (var t = new Trainer(RecipeRegistry.Create(recipe), Cfg(recipe, 2 * n, sets), dir, TestRuns.Quiet))
        {
            before = TestRuns.Weights(t.Recipe.Model);
            trainable = t.TrainableNames;
            full = t.Run();
            after = TestRuns.Weights(t.Recipe.Model);
        }
        Assert.Equal(2 * n, full.Steps);
        double first = full.History.Take(2).Average(h => h.Loss), last = full.History.TakeLast(2).Average(h => h.Loss);
        Assert.True(double.IsFinite(first) && last < ratio * first, $"{recipe}: loss {first:F4} → {last:F4}");

        var train = trainable.ToHashSet();
        foreach (var (name, w) in before)
            if (!train.Contains(name)) Assert.True(w.AsSpan().SequenceEqual(after[name]), $"{recipe}: frozen {name} changed");
        foreach (var prefix in mustTrain)
        {
            var names = train.Where(x => x.StartsWith(prefix, StringComparison.Ordinal)).ToList();
            Assert.NotEmpty(names);
            Assert.Contains(names, x => !before[x].AsSpan().SequenceEqual(after[x]));
        }
        int changed = train.Count(x => !before[x].AsSpan().SequenceEqual(after[x]));
        Assert.True(changed >= train.Count / 2, $"{recipe}: only {changed} of {train.Count} trainable tensors changed");
        Assert.True(train.Count < before.Count, $"{recipe}: nothing is frozen");

        // N steps, then a fresh process-like trainer resumes from the checkpoint for N more: identical to 2N at once.
        string rdir = TestRuns.TempDir();
        using (var t = new Trainer(RecipeRegistry.Create(recipe), Cfg(recipe, 2 * n, sets.Append($"train.max_steps={n}").ToArray()), rdir, TestRuns.Quiet)) t.Run();
        string ck = Path.Combine(rdir, "checkpoints", CheckpointStore.NameOf(n));
        Assert.True(File.Exists(Path.Combine(ck, MediaTokens.InfoFile)), ck);
        using (var t = new Trainer(RecipeRegistry.Create(recipe), Cfg(recipe, 2 * n, sets), rdir, TestRuns.Quiet))
        {
            var r = t.Run(resume: true);
            Assert.Equal(2 * n, r.Steps);
            Assert.Equal(full.History.Skip(n).Select(h => h.Loss), r.History.Select(h => h.Loss));
            var resumed = TestRuns.Weights(t.Recipe.Model);
            foreach (var (name, w) in after) Assert.True(w.AsSpan().SequenceEqual(resumed[name]), $"{recipe}: {name} differs after resume");
        }
    }

    [Fact]
    public void SpecAugmentChangesTheSpeechStage2TrainingLoss()
    {
        TrainResult Run(params string[] sets)
        {
            using var t = new Trainer(RecipeRegistry.Create("speech-stage2"), Cfg("speech-stage2", 1, sets), TestRuns.TempDir(), TestRuns.Quiet);
            return t.Run();
        }
        Assert.NotEqual(Run().History[0].Loss, Run("speech.finetune.spec_augment=true").History[0].Loss);
        Assert.Equal(Run().History[0].Loss, Run().History[0].Loss);
    }

    [Fact]
    public void VideoTrainsOnStillImagesMixedWithClips()
    {
        // Two clips and two images in one manifest (absolute paths); each image is a still clip of num_frames frames.
        string dir = TestRuns.TempDir();
        static IEnumerable<string> Lines(string manifest, int n) => File.ReadLines(manifest).Take(n).Select(l =>
        {
            var o = (JsonObject)JsonNode.Parse(l)!;
            foreach (var key in new[] { "video", "image" })
                if (o[key] is JsonNode p) o[key] = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(manifest)!, (string)p!));
            o.Remove("anchor");                                                  // an image-caption field, not a video record's
            return o.ToJsonString();
        });
        string mixed = Path.Combine(dir, "mixed.jsonl");
        File.WriteAllLines(mixed, Lines(MediaTestData.VideoManifest, 2).Concat(Lines(MediaTestData.ImageManifest, 2)));
        var sets = new[] { $"data.train=\"{mixed}\"", $"data.eval=\"{mixed}\"" };
        using var t = new Trainer(RecipeRegistry.Create("video"), Cfg("video", 6, sets), Path.Combine(dir, "run"), TestRuns.Quiet);
        var r = t.Run();
        var v = (VideoRecipe)t.Recipe;
        Assert.True(r.History.All(h => double.IsFinite(h.Loss)));
        Assert.True(r.History.TakeLast(2).Average(h => h.Loss) < r.History.Take(2).Average(h => h.Loss), "loss does not fall");
        Assert.Equal(2L * 4 * 3 * 224 * 224 + 2L * 3 * 224 * 224, v.FrameCacheBytes);   // a still is held once, not per frame

        // A record with both or neither media key is refused with its line.
        string bad = Path.Combine(dir, "bad.jsonl");
        File.WriteAllText(bad, "{\"video\": \"a.mp4\", \"image\": \"a.png\", \"caption\": \"x\"}\n");
        var e = Assert.Throws<DataFormatException>(() => JsonlManifest.ReadVideoCaptions(bad, false, out _));
        Assert.Contains("bad.jsonl:1", e.Message);
        Assert.Contains("exactly one of \"video\" and \"image\"", e.Message);
        File.WriteAllText(bad, "{\"caption\": \"x\"}\n");
        Assert.Contains("exactly one of", Assert.Throws<DataFormatException>(() => JsonlManifest.ReadVideoCaptions(bad, false, out _)).Message);
    }

    [Fact]
    public void StillImagesAreFittedAndPaddedLikeFrames()
    {
        var wide = new Vision.RgbImage(4, 2, Enumerable.Range(0, 24).Select(i => (byte)(10 + i)).ToArray());
        var rgb = VideoRecipe.FitPad(wide, 4);                                            // already fits: copied top-left
        Assert.Equal(4 * 4 * 3, rgb.Length);
        Assert.Equal(wide.Pixels, rgb.Take(24).ToArray());
        Assert.All(rgb.Skip(24), b => Assert.Equal(0, b));                                 // bottom half padded black
        var big = VideoRecipe.FitPad(Vision.RgbImage.Filled(8, 4, 200, 100, 50), 4);      // halved to 4 × 2, then padded
        Assert.Equal(new byte[] { 200, 100, 50 }, big.Take(3).ToArray());
        Assert.Equal(new byte[] { 200, 100, 50 }, big.Skip((1 * 4 + 3) * 3).Take(3).ToArray());
        Assert.All(big.Skip(2 * 4 * 3), b => Assert.Equal(0, b));
    }

    [Fact]
    public void VideoFrameCacheDecodesEachClipOnceAndChangesNoNumber()
    {
        (TrainResult Result, long Hits, long Bytes) Run(params string[] sets)
        {
            // 4 clips, 2 per step: steps 3 and 4 are the second epoch.
            using var t = new Trainer(RecipeRegistry.Create("video"), Cfg("video", 4, sets), TestRuns.TempDir(), TestRuns.Quiet);
            var r = t.Run();
            var v = (VideoRecipe)t.Recipe;
            return (r, v.FrameCacheHits, v.FrameCacheBytes);
        }
        var cached = Run();
        var uncached = Run("video.frame_cache_mb=0");
        var capped = Run("video.frame_cache_mb=1");
        Assert.True(cached.Hits >= 4, $"hits {cached.Hits}");
        Assert.Equal(4L * 4 * 3 * 224 * 224, cached.Bytes);          // 4 clips × 4 frames of 224 × 224 RGB
        Assert.Equal(0, uncached.Hits);
        Assert.Equal(0, uncached.Bytes);
        Assert.InRange(capped.Bytes, 1, 1 << 20);
        Assert.Equal(uncached.Result.History.Select(h => h.Loss), cached.Result.History.Select(h => h.Loss));
        Assert.Equal(uncached.Result.History.Select(h => h.Loss), capped.Result.History.Select(h => h.Loss));
        Assert.Contains("video.frame_cache_mb", Assert.Throws<Text.ConfigException>(() => Cfg("video", 1, "video.frame_cache_mb=-1")).Message);
    }

    [Fact]
    public void VideoMediaSettingsShapeTheFreshVideoAdapter()
    {
        using (var r = RecipeRegistry.Create("video"))
        {
            r.Setup(Cfg("video", 1, "video.aggregator_merge=\"per_position\""), TorchSharp.torch.CPU, TorchSharp.torch.ScalarType.Float32);
            var agg = ((VideoRecipe)r).Vlm.video_model.aggregator;
            Assert.True(agg.Config.PerPosition);
            Assert.Equal(new long[] { agg.Config.TokensPerFrame, agg.Config.Dim }, agg.latents.shape);
        }
        using (var r = RecipeRegistry.Create("video"))
        {
            r.Setup(Cfg("video", 1, "video.video_from_image_layers=true"), TorchSharp.torch.CPU, TorchSharp.torch.ScalarType.Float32);
            var m = ((VideoRecipe)r).Vlm;
            int i = m.Config.VideoCrossAttentionLayers[0];
            var image = m.language_model.model.layers[i].named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, p) in m.video_model.cross_attention_layers[0].named_parameters())
                if (name.EndsWith("_gate", StringComparison.Ordinal)) Assert.Equal(0f, p.abs().max().item<float>());
                else Assert.True(p.allclose(image[name], rtol: 0, atol: 0), name);
        }
        using (var r = RecipeRegistry.Create("video"))
        {
            r.Setup(Cfg("video", 1, "video.video_layers_before=[1,2]", "video.video_from_image_layers=true"), TorchSharp.torch.CPU, TorchSharp.torch.ScalarType.Float32);
            var m = ((VideoRecipe)r).Vlm;
            var image = m.Config.Base.CrossAttentionLayers;
            Assert.Equal(new[] { image[0], image[1] }, m.Config.Video.CrossAttentionLayers);
            Assert.Equal(2, m.video_model.cross_attention_layers.Count);
            for (int j = 0; j < 2; j++)
            {
                var (name, q) = m.video_model.cross_attention_layers[j].named_parameters().First(p => p.name.EndsWith("q_proj.weight", StringComparison.Ordinal));
                Assert.True(q.allclose(m.language_model.model.layers[image[j]].named_parameters().First(p => p.name == name).parameter, rtol: 0, atol: 0));
            }
        }
        using (var r = RecipeRegistry.Create("video"))
        {
            var bad = Assert.Throws<Text.ConfigException>(() => r.Setup(Cfg("video", 1, "video.video_layers_before=[3]"), TorchSharp.torch.CPU, TorchSharp.torch.ScalarType.Float32));
            Assert.Contains("ordinal 3", bad.Message);
        }
        using (var r = RecipeRegistry.Create("video"))
        {
            r.Setup(Cfg("video", 1, "video.aggregator_merge=\"per_position\"", "video.aggregator_place_code=true"), TorchSharp.torch.CPU, TorchSharp.torch.ScalarType.Float32);
            var a = ((VideoRecipe)r).Vlm.Config.Video.Aggregator;
            Assert.True(a.PlaceCode);
            Assert.Equal(4, a.TilesPerFrame);
        }
        using (var r = RecipeRegistry.Create("video"))
        {
            var bad = Assert.Throws<Text.ConfigException>(() => r.Setup(Cfg("video", 1, "video.aggregator_place_code=true"), TorchSharp.torch.CPU, TorchSharp.torch.ScalarType.Float32));
            Assert.Contains("place_code needs merge", bad.Message);
        }
        var e = Assert.Throws<Text.ConfigException>(() => Cfg("video", 1, "video.aggregator_merge=\"mean\""));
        Assert.Contains("video.aggregator_merge", e.Message);
    }

    [Fact]
    public void SpeechStage2ContinuesAFolderItWrote()
    {
        string o = TestRuns.TempDir();
        Dictionary<string, float[]> trained, fresh;
        using (var t = new Trainer(RecipeRegistry.Create("speech-stage2"), Cfg("speech-stage2", 2), o, TestRuns.Quiet)) { t.Run(); trained = TestRuns.Weights(t.Recipe.Model); }
        string folder = Path.Combine(o, "checkpoints", CheckpointStore.NameOf(2));
        using (var r = RecipeRegistry.Create("speech-stage2"))
        {
            r.Setup(Cfg("speech-stage2", 2), TorchSharp.torch.CPU, TorchSharp.torch.ScalarType.Float32);
            fresh = TestRuns.Weights(r.Model);
        }
        using var c = RecipeRegistry.Create("speech-stage2");
        c.Setup(Cfg("speech-stage2", 2, $"model.init_from=\"{folder}\""), TorchSharp.torch.CPU, TorchSharp.torch.ScalarType.Float32);
        var loaded = TestRuns.Weights(c.Model);
        Assert.Equal(trained.Keys.Order(), loaded.Keys.Order());
        foreach (var (k, w) in trained) Assert.True(w.AsSpan().SequenceEqual(loaded[k]), $"{k} not continued");
        Assert.Contains(trained.Keys, k => k.Contains("adapter") && !trained[k].AsSpan().SequenceEqual(fresh[k]));   // the adapter is the trained one, not a fresh one
    }

    [Fact]
    public void SpeedPerturbationResamplesTheTrainingAudio()
    {
        // A 440 Hz tone played at 1.1× is 1/1.1 as long and sounds at 484 Hz.
        var tone = Enumerable.Range(0, 16000).Select(i => (float)Math.Sin(2 * Math.PI * 440 * i / 16000.0)).ToArray();
        var fast = SpeechSftRecipe.SpeedPerturb(tone, 1.1);
        Assert.InRange(fast.Length, 14540, 14550);
        int crossings = 0;
        for (int i = 200; i < fast.Length - 200; i++) if (fast[i - 1] < 0 && fast[i] >= 0) crossings++;
        Assert.InRange(crossings / ((fast.Length - 400) / 16000.0), 480, 488);
        Assert.Same(tone, SpeechSftRecipe.SpeedPerturb(tone, 1.0));

        TrainResult Run(params string[] sets)
        {
            using var t = new Trainer(RecipeRegistry.Create("speech-stage2"), Cfg("speech-stage2", 1, sets), TestRuns.TempDir(), TestRuns.Quiet);
            return t.Run();
        }
        Assert.NotEqual(Run().History[0].Loss, Run("speech.finetune.speed_perturb=[0.8,1.2]").History[0].Loss);
        Assert.Equal(Run("speech.finetune.speed_perturb=[0.8,1.2]").History[0].Loss, Run("speech.finetune.speed_perturb=[0.8,1.2]").History[0].Loss);
        Assert.Contains("speech.finetune.speed_perturb", Assert.Throws<Text.ConfigException>(() => Cfg("speech-stage2", 1, "speech.finetune.speed_perturb=[3.0]")).Message);
    }

    [Fact]
    public void SpeechPretrainStoresFeatureStatisticsOfTheTrainingAudio()
    {
        using var r = (SpeechPretrainRecipe)RecipeRegistry.Create("speech-stage1");
        r.Setup(Cfg("speech-stage1", 2), TorchSharp.torch.CPU, TorchSharp.torch.ScalarType.Float32);
        var mean = r.Pretrain.encoder.feature_norm.mean.data<float>().ToArray();
        var var = r.Pretrain.encoder.feature_norm.var.data<float>().ToArray();
        Assert.Equal(80, mean.Length);
        Assert.Contains(mean, m => Math.Abs(m) > 1e-3);                       // not the identity statistics
        Assert.All(var, v => Assert.True(v > 0 && float.IsFinite(v)));
        Assert.Contains(var, v => Math.Abs(v - 1) > 1e-3);
        Assert.DoesNotContain(r.Pretrain.named_parameters(), p => p.name.Contains("k__BackingField"));
    }

    [Fact]
    public void SpeechSftPromptsFollowTheTaskAndLabelOnlyTheTranscript()
    {
        using var r = (SpeechSftRecipe)RecipeRegistry.Create("speech-stage2");
        r.Setup(Cfg("speech-stage2", 2), TorchSharp.torch.CPU, TorchSharp.torch.ScalarType.Float32);
        Assert.Equal("Repeat after me in English:", r.SystemPrompt(new AudioTextRecord("a.wav", "hi", null, "asr")));
        Assert.Equal("Translate the following sentence into French:", r.SystemPrompt(new AudioTextRecord("a.wav", "salut", "French", "ast")));
        var (ids, offset) = SpeechSftRecipe.Prompt(ByteTokenizer.Instance, "Repeat after me in English:", 5);
        Assert.Equal(262, ids[offset - 1]);
        Assert.Equal(263, ids[offset + 5]);
        string text = ByteTokenizer.Instance.Decode(ids);
        Assert.Contains("Repeat after me in English:", text);
        Assert.EndsWith("assistant\n\n", text);
    }

    [Fact]
    public void CaptionSequenceLabelsCaptionAndEndOnly()
    {
        var t = ByteTokenizer.Instance;
        var (ids, labels) = MediaTokens.Caption(t, MediaTokens.ImageTokenId(t), "a red cat", 64);
        Assert.Equal(new long[] { 264, t.BosId }, ids.Take(2));
        Assert.Equal(-100, labels[0]);                                        // <|image|> → <|begin_of_text|> is not a target
        Assert.Equal((long)'a', labels[1]);
        Assert.Equal(t.EosId, labels[^2]);
        Assert.Equal(-100, labels[^1]);
        Assert.Equal(9 + 1, labels.Count(l => l != -100));
    }

    [Fact]
    public void VideoBuildsItsImageModelFromATextFolderThroughTheLibraries()
    {
        var (cpu, f32) = (TorchSharp.torch.CPU, TorchSharp.torch.ScalarType.Float32);
        string text = TestRuns.TempDir();
        using (var decoder = TextRecipe.BuildDecoder(Cfg("video", 1), ByteTokenizer.Instance, cpu, f32)) decoder.Save(text);
        var cfg = Cfg("video", 1, $"model.init_from=\"{text}\"", "video.video_from_image_layers=true");
        using var built = VideoRecipe.Build(cfg, ByteTokenizer.Instance, cpu, f32);
        // the same as the vision library's FromTextModel, then the video library's FromImageModel, with the run's seed
        var preset = Video.VideoPresets.Get("tiny-video");
        using var lm = Text.LlamaForCausalLM.FromPretrained(text);
        var image = Vision.VisionLanguageModel.FromTextModel(lm, preset.Base.Vision,
            Vision.VisionLanguageConfig.FusionSchedule(lm.Config.NumLayers, Math.Min(preset.Base.CrossAttentionLayers.Count, lm.Config.NumLayers)), cfg.Seed, cfg.Model.InitStd);
        using var expected = Video.VideoLanguageModel.FromImageModel(image, built.Config.Video, cfg.Seed, cfg.Model.InitStd).CopyImageCrossAttentionIntoVideoLayers();
        var want = TestRuns.Weights(expected);
        var got = TestRuns.Weights(built);
        Assert.Equal(want.Keys.Order(), got.Keys.Order());
        foreach (var (name, v) in got) Assert.True(v.AsSpan().SequenceEqual(want[name]), name);
        // the decoder's self-attention layers are the text model's
        var textWeights = TestRuns.Weights(lm);
        foreach (var (name, v) in got.Where(kv => kv.Key.StartsWith("language_model.", StringComparison.Ordinal)))
            if (built.ImageModel.TextKeyOf(name["language_model.".Length..]) is { } key && key != "model.embed_tokens.weight")
                Assert.True(v.AsSpan().SequenceEqual(textWeights[key]), name);
    }

    [Fact]
    public void VideoRunTakesTheBaseWeightsOfMediaVisionFrom()
    {
        string dir = TestRuns.TempDir();
        string Run(string recipe, params string[] sets)
        {
            string o = Path.Combine(dir, recipe + sets.Length);
            using (var t = new Trainer(RecipeRegistry.Create(recipe), Cfg(recipe, 1, sets), o, TestRuns.Quiet)) t.Run();
            return Path.Combine(o, "checkpoints", "step-00000001");
        }
        string video = Run("video"), image = Run("vision-stage1", "seed=99");
        var videoWeights = TestRuns.Weights(Video.VideoLanguageModel.FromPretrained(video));
        var imageWeights = TestRuns.Weights(Vision.VisionLanguageModel.FromPretrained(image));
        var cfg = Cfg("video", 1, $"model.init_from=\"{video}\"", $"video.vision_from=\"{image}\"");
        using (var m = VideoRecipe.Build(cfg, ByteTokenizer.Instance, TorchSharp.torch.CPU, TorchSharp.torch.ScalarType.Float32))
        {
            var w = TestRuns.Weights(m);
            int fromImage = 0;
            foreach (var (name, v) in w)
            {
                if (name.StartsWith("video_model.", StringComparison.Ordinal)) Assert.True(v.AsSpan().SequenceEqual(videoWeights[name]), name);
                else
                {
                    Assert.True(v.AsSpan().SequenceEqual(imageWeights[name]), name);
                    fromImage++;
                }
            }
            Assert.True(fromImage > 10);
        }
        var bad = Cfg("video", 1, $"model.init_from=\"{image}\"", $"video.vision_from=\"{image}\"");
        var e = Assert.Throws<Text.ConfigException>(() => VideoRecipe.Build(bad, ByteTokenizer.Instance, TorchSharp.torch.CPU, TorchSharp.torch.ScalarType.Float32));
        Assert.Contains("video.vision_from", e.Message);
        var missing = Cfg("video", 1, $"model.init_from=\"{video}\"", $"video.vision_from=\"{Path.Combine(dir, "nowhere")}\"");
        e = Assert.Throws<Text.ConfigException>(() => VideoRecipe.Build(missing, ByteTokenizer.Instance, TorchSharp.torch.CPU, TorchSharp.torch.ScalarType.Float32));
        Assert.Contains("nowhere", e.Message);
    }

    [Fact]
    public void EvalScoresCaptionVideoAndAsrModels()
    {
        string dir = TestRuns.TempDir();
        JsonObject Train(string recipe, Func<string, JsonObject> eval)
        {
            string o = Path.Combine(dir, recipe);
            using (var t = new Trainer(RecipeRegistry.Create(recipe), Cfg(recipe, 1), o, TestRuns.Quiet)) t.Run();
            return eval(Path.Combine(o, "checkpoints", "step-00000001"));
        }
        var cap = Train("vision-stage1", m => MultimodalEval.Caption(m, MediaTestData.ImageManifest, limit: 2, maxNewTokens: 8));
        Assert.Equal(2, cap["count"]!.GetValue<int>());
        Assert.InRange(cap["exact_match"]!.GetValue<double>(), 0, 1);
        Assert.Equal(2, cap["examples"]!.AsArray().Count);
        var refs = cap["examples"]!.AsArray().Select(e => e!["reference"]!.GetValue<string>()).ToList();
        var preds = cap["examples"]!.AsArray().Select(e => e!["prediction"]!.GetValue<string>()).ToList();
        Assert.Equal(MultimodalEval.ExactMatch(preds, refs), cap["exact_match"]!.GetValue<double>());

        var asr = Train("speech-stage2", m => MultimodalEval.Asr(m, MediaTestData.SpeechManifest, limit: 2, maxNewTokens: 8));
        Assert.True(asr["wer"]!.GetValue<double>() >= 0);
        Assert.Equal(2, asr["examples"]!.AsArray().Count);

        var vid = Train("video", m => MultimodalEval.Video(m, MediaTestData.VideoManifest, limit: 1, maxNewTokens: 8));
        Assert.InRange(vid["exact_match"]!.GetValue<double>(), 0, 1);
        Assert.Equal(1, vid["count"]!.GetValue<int>());
    }

    [Fact]
    public void CaptionExactMatchIgnoresCaseSpacingAndAFinalPeriod()
    {
        Assert.Equal("a red circle", MultimodalEval.NormalizeCaption("  A red   circle. "));
        Assert.Equal(0.5, MultimodalEval.ExactMatch(new[] { "A red circle.", "a blue circle" }, new[] { "a red circle", "a red circle" }));
        Assert.Throws<ArgumentException>(() => MultimodalEval.ExactMatch(new[] { "a" }, new[] { "a", "b" }));
    }

    [Fact]
    public void UnknownComponentAndMissingEncoderCheckpointAreNamed()
    {
        var e = Assert.Throws<Text.ConfigException>(() => new Trainer(RecipeRegistry.Create("vision-stage1"), Cfg("vision-stage1", 2, "train.trainable=[\"nope\"]"), TestRuns.TempDir(), TestRuns.Quiet));
        Assert.Contains("nope", e.Message);
        Assert.Contains("vision_model", e.Message);
        string empty = TestRuns.TempDir();
        var ex = Assert.ThrowsAny<Exception>(() => new Trainer(RecipeRegistry.Create("speech-stage2"), Cfg("speech-stage2", 2, $"speech.finetune.encoder_from=\"{empty}\""), TestRuns.TempDir(), TestRuns.Quiet));
        Assert.Contains(empty, ex.Message);
    }

    [Fact]
    public void DefaultsAreThePaperNumbers()
    {
        var v1 = new VisionStage1Recipe().DefaultConfig();
        Assert.Equal((1e-3, 0.01, 16384L, "cosine", "samples"), (v1.Optim.Lr, v1.Optim.WeightDecay, v1.Batch.Global, v1.Optim.Schedule, v1.Batch.Unit));
        Assert.Equal(4, v1.Vision!.MaxTiles);
        Assert.Equal(new[] { "vision_model", "multi_modal_projector", "cross_attention_layers" }, new VisionStage1Recipe().DefaultTrainable);
        var v2 = new VisionStage2Recipe().DefaultConfig();
        Assert.Equal((2e-5, 0.01), (v2.Optim.Lr, v2.Optim.WeightDecay));
        var vid = new VideoRecipe().DefaultConfig();
        Assert.Equal((1e-4, 4096L, 190, 16, 16), (vid.Optim.Lr, vid.Batch.Global, vid.Data.SeqLen, vid.Video!.NumFrames, vid.Video.FramesPerGroup));
        Assert.Equal(new[] { "video_model" }, new VideoRecipe().DefaultTrainable);
        var s1 = new SpeechPretrainRecipe().DefaultConfig();
        Assert.Equal((0.025, 32, 16, 8192, 500_000L, 2048L), (s1.Speech!.BestRq!.MaskProbability, s1.Speech.BestRq.MaskSpan, s1.Speech.BestRq.Codebooks, s1.Speech.BestRq.CodebookSize, s1.Optim.TotalSteps, s1.Batch.Global));
        Assert.Equal(6000, s1.Speech.MaxAudioFrames);
        var s2 = new SpeechSftRecipe().DefaultConfig();
        Assert.Equal((1e-4, 512L, 650_000L), (s2.Optim.Lr, s2.Batch.Global, s2.Optim.TotalSteps));
        Assert.Equal(new[] { "encoder", "adapter" }, new SpeechSftRecipe().DefaultTrainable);
    }

    [Fact]
    public void MakeDataWritesSetsAndDemoConfigsThatLoad()
    {
        string dir = TestRuns.TempDir();
        var files = DemoData.Write("images", dir, seed: 5, count: 4, evalCount: 2);
        Assert.Equal(3, files.Count);
        Assert.All(files, f => Assert.True(File.Exists(f), f));
        foreach (var name in new[] { "vision-stage1", "vision-stage2" })
        {
            using var r = RecipeRegistry.Create(name);
            var c = ConfigLoader.Load(r.DefaultConfig(), Path.Combine(dir, name + ".json"));
            Assert.Equal(Path.Combine(dir, "images", "manifest.jsonl"), c.Data.Train);
            Assert.True(File.Exists(c.Data.Eval));
            Assert.Equal("bytes", c.Tokenizer);
        }
        var held = JsonlManifest.ReadImageCaptions(Path.Combine(dir, "images-heldout", "manifest.jsonl"), false, out _);
        Assert.All(held, h => Assert.True(h.Caption.Contains("green triangle") || h.Caption.Contains("blue star"), h.Caption));
        Assert.Throws<Text.ConfigException>(() => DemoData.Write("pictures", dir, 1));
    }

    [Fact]
    public void MakeDataImageKindsLimitTheScenesAndDropTheHeldOutSetForPrintOnly()
    {
        string dir = TestRuns.TempDir();
        var files = DemoData.Write("images", dir, seed: 6, count: 12, evalCount: 4, imageKinds: new[] { "word", "number" });
        Assert.Equal(2, files.Count);
        Assert.False(Directory.Exists(Path.Combine(dir, "images-heldout")));
        foreach (var set in new[] { "images", "images-eval" })
        {
            var records = JsonlManifest.ReadImageCaptions(Path.Combine(dir, set, "manifest.jsonl"), false, out _);
            Assert.Equal(set == "images" ? 12 : 4, records.Count);
            Assert.All(records, r => Assert.Matches("^the (word [A-Z]+|number [0-9]{1,2})$", r.Caption));
        }
        string other = TestRuns.TempDir();
        Assert.Equal(3, DemoData.Write("images", other, seed: 6, count: 6, evalCount: 2, imageKinds: new[] { "overlap" }).Count);
        Assert.All(JsonlManifest.ReadImageCaptions(Path.Combine(other, "images", "manifest.jsonl"), false, out _),
            r => Assert.Contains(" in front of ", r.Caption));
        var bad = Assert.Throws<SyntheticDataException>(() => DemoData.Write("images", TestRuns.TempDir(), 1, 4, 2, imageKinds: new[] { "words" }));
        Assert.Contains("\"words\"", bad.Message);
    }
}

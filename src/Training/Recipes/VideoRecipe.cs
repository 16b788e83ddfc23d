using System.Collections.Concurrent;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Video;
using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// <c>video</c>: video pretraining (Llama 3 paper §7.4): start from the image-pretrained (and annealed) model; the
/// temporal aggregator and the video cross-attention layers are initialised randomly (zero gates) and trained, everything
/// else frozen. Each clip gives <c>video.num_frames</c> frames sampled uniformly by the Video frame sampler
/// (<see cref="VideoFrameReader"/>, fitted into the 2 × 2-tile canvas), every frame goes through the frozen image encoder,
/// and the aggregator merges <c>video.frames_per_group</c> consecutive frames into one (16 → 1 in pretraining). Loss:
/// next-token cross-entropy on the caption tokens of <c>&lt;|video|&gt;&lt;|begin_of_text|&gt;caption&lt;|end_of_text|&gt;</c>.
/// </summary>
public sealed class VideoRecipe : Recipe
{
    VideoLanguageModel? _model;

    /// <inheritdoc/>
    public override string Name => "video";
    /// <inheritdoc/>
    public override string Description => "Video pretraining: only the temporal aggregator and video cross-attention train (16 frames merged 16 → 1), caption tokens only.";
    /// <summary>The tokenizer of the run.</summary>
    public ITrainingTokenizer Tokenizer { get; private set; } = ByteTokenizer.Instance;
    Device _device = CPU;
    /// <summary>The model being trained.</summary>
    public VideoLanguageModel Vlm => _model ?? throw new InvalidOperationException("call Setup first.");
    /// <inheritdoc/>
    public override nn.Module Model => Vlm;
    /// <inheritdoc/>
    public override IReadOnlyList<string> DefaultTrainable => new[] { "video_model" };


    /// <inheritdoc/>
    public override TrainConfig DefaultConfig() => new()
    {
        Command = "mm-train video --config configs/training/video.json --out runs/video",
        Recipe = Name,
        Tokenizer = "llama3",
        Model = new ModelSection { Preset = "llama3.1-8b", InitFrom = "runs/vision-stage2/final" },
        Data = new DataSection { Train = "videos.jsonl", SeqLen = 190 },
        Optim = new OptimSection { Lr = 1e-4, MinLr = 1e-6, WarmupSteps = 500, TotalSteps = 20_000, Schedule = "cosine", WeightDecay = 0.01 },
        Batch = new BatchSection { Unit = "samples", Global = 4096, Micro = 1 },
        Train = new LoopSection { SaveEvery = 1000 },
        Video = new VideoSection { Preset = "llama3.2-11b-video", NumFrames = 16, FramesPerGroup = 16 },
    };


    /// <inheritdoc/>
    public override void Setup(TrainConfig config, Device device, ScalarType dtype)
    {
        Config = config; _device = device;
        Tokenizer = Llama3TrainingTokenizer.Resolve(config.Tokenizer);
        _model = Build(config, Tokenizer, device, dtype);
    }

    /// <summary>
    /// The video model of <paramref name="config"/>: a video folder in <c>model.init_from</c> loads as is (with the base
    /// weights of <c>video.vision_from</c> when set); an image-text
    /// folder gets a fresh video adapter (<see cref="VideoLanguageModel.FromImageModel(string, VideoConfig, long, Device?, ScalarType, Action{int, int}?)"/>);
    /// a text folder becomes the image model of the preset's encoder and cross-attention schedule
    /// (<see cref="VisionLanguageModel.FromTextModel"/>) with a fresh video adapter; otherwise the base of
    /// <c>video.preset</c> (default <c>tiny-video</c>) is built fresh with the tokenizer's vocabulary.
    /// </summary>
    public static VideoLanguageModel Build(TrainConfig config, ITrainingTokenizer tok, Device device, ScalarType dtype)
    {
        var preset = VideoPresets.Get(config.VideoSettings.Preset ?? "tiny-video");
        string? init = config.Model.InitFrom;
        string? visionFrom = config.VideoSettings.VisionFrom;
        if (!string.IsNullOrEmpty(init) && VideoLanguageModel.IsVideoModelDirectory(init))
        {
            if (!string.IsNullOrEmpty(visionFrom) && !Directory.Exists(visionFrom))
                throw new ConfigException($"video.vision_from: folder '{visionFrom}' not found.");
            var video = VideoLanguageModel.FromPretrained(init, device, dtype);
            if (string.IsNullOrEmpty(visionFrom)) return video;
            try
            {
                video.LoadBaseWeights(visionFrom);
                return video;
            }
            catch
            {
                video.Dispose();
                throw;
            }
        }
        if (!string.IsNullOrEmpty(visionFrom))
            throw new ConfigException($"video.vision_from replaces the base weights of the video model named by model.init_from, but '{init ?? "null"}' is not a video model folder.");
        if (!string.IsNullOrEmpty(init) && ModelConstruction.IsVisionFolder(init))
        {
            var baseCfg = VisionLanguageConfigJson.Read(Path.Combine(init, "config.json"));
            return WarmStart(VideoLanguageModel.FromImageModel(init, VideoFor(config, preset, baseCfg), config.Seed, device, dtype));
        }
        if (!string.IsNullOrEmpty(init))
        {
            // A text decoder: the image model around it (the preset's encoder and cross-attention schedule), then the video adapter.
            VisionLanguageModel image;
            using (var text = LlamaForCausalLM.FromPretrained(init, device, dtype))
            {
                int self = text.Config.NumLayers, cross = Math.Min(preset.Base.CrossAttentionLayers.Count, self);
                try { image = VisionLanguageModel.FromTextModel(text, preset.Base.Vision, VisionLanguageConfig.FusionSchedule(self, cross), config.Seed, config.Model.InitStd); }
                catch (CheckpointFormatException e) { throw new CheckpointFormatException($"{init}: {e.Message}", e); }
            }
            try { return WarmStart(VideoLanguageModel.FromImageModel(image, VideoFor(config, preset, image.Config), config.Seed, config.Model.InitStd)); }
            catch
            {
                image.Dispose();
                throw;
            }
        }
        // Nothing to start from: the preset's image-text config with the run's overrides and vocabulary, all of it fresh.
        var b = ModelConstruction.Vision(config, preset.Base, tok);
        var cfg = new VideoLanguageConfig { Base = b, Video = VideoFor(config, preset, b) };
        return WarmStart(VideoLanguageModel.Create(cfg, device, dtype).InitializeWeights(config.Seed, config.Model.InitStd));

        // A fresh adapter's video layers start as copies of the image layers after them when video.video_from_image_layers.
        VideoLanguageModel WarmStart(VideoLanguageModel fresh) =>
            config.VideoSettings.VideoFromImageLayers ? fresh.CopyImageCrossAttentionIntoVideoLayers() : fresh;
    }

    /// <summary>The video settings for base <paramref name="b"/>: the preset's aggregator shape with <c>video.num_frames</c>/<c>frames_per_group</c>
    /// (and group embeddings for at least the groups a clip makes).</summary>
    static VideoConfig VideoFor(TrainConfig config, VideoLanguageConfig preset, VisionLanguageConfig b)
    {
        var a = preset.Video.Aggregator;
        if (config.VideoSettings.AggregatorMerge is { } merge)
            a = a with { Merge = merge, NumLatents = merge == TemporalAggregatorConfig.MergePerPosition ? null : a.NumLatents };
        if (config.VideoSettings.AggregatorPlaceCode) a = a with { PlaceCode = true };
        int fpg = config.VideoSettings.FramesPerGroup;
        // video.video_layers_before counts image cross-attention layers (1-based); the config stores decoder layer indices.
        var image = b.CrossAttentionLayers.OrderBy(i => i).ToArray();
        var presetImage = preset.Base.CrossAttentionLayers.OrderBy(i => i).ToList();
        var ordinals = config.VideoSettings.VideoLayersBefore?.ToArray()
            ?? preset.Video.CrossAttentionLayers?.Select(i => presetImage.IndexOf(i) + 1).Where(o => o >= 1 && o <= image.Length).ToArray();
        if (ordinals is { Length: 0 } && config.VideoSettings.VideoLayersBefore is null) ordinals = new[] { image.Length };
        foreach (int o in ordinals ?? Array.Empty<int>())
            if (o < 1 || o > image.Length)
                throw new ConfigException($"{config.Recipe} video.video_layers_before: image cross-attention ordinal {o} is outside 1..{image.Length}.");
        return new VideoConfig
        {
            Aggregator = a with { Dim = b.Text.HiddenSize, TokensPerFrame = b.Vision.MaxNumTiles * b.Vision.TokensPerTile, FramesPerGroup = fpg,
                TilesPerFrame = config.VideoSettings.AggregatorPlaceCode ? b.Vision.MaxNumTiles : a.TilesPerFrame,
                MaxFramesPerGroup = Math.Max(a.MaxFramesPerGroup, fpg),
                MaxGroups = a.MaxGroups > 0 ? Math.Max(a.MaxGroups, (config.VideoSettings.NumFrames + fpg - 1) / fpg) : 0 },
            NumFrames = config.VideoSettings.NumFrames,
            CrossAttentionLayers = ordinals?.Select(o => image[o - 1]).OrderBy(i => i).ToArray(),
            VideoTokenId = b.ImageTokenIndex + 1,
        }.Validate(b.Text.NumLayers, b.CrossAttentionLayers, $"{config.Recipe} video");
    }

    /// <summary>One prepared clip: ids, labels and its preprocessed frames.</summary>
    internal sealed record Item(long[] Ids, long[] Labels, List<ProcessedImage> Frames);

    // Decoded frames (RGB bytes, side × side) per clip path, kept across epochs so that ffmpeg decodes each clip once.
    readonly ConcurrentDictionary<string, byte[][]> _frameCache = new();
    long _frameCacheBytes, _frameCacheHits;

    /// <summary>Clips whose frames came from the decoded-frame cache (<c>video.frame_cache_mb</c>) instead of ffmpeg.</summary>
    internal long FrameCacheHits => Interlocked.Read(ref _frameCacheHits);
    /// <summary>Bytes of decoded frames held by the cache.</summary>
    internal long FrameCacheBytes => Interlocked.Read(ref _frameCacheBytes);

    Item Prepare(VideoCaptionRecord r)
    {
        var (ids, labels) = MediaTokens.Caption(Tokenizer, Vlm.Config.Video.VideoTokenId, r.Caption, Config.Data.SeqLen);
        int g = (int)Math.Sqrt(Vlm.Config.Base.Vision.MaxNumTiles), side = g * Vlm.Config.Base.Vision.ImageSize;
        var frames = DecodedFrames(r, side);
        var list = new List<ProcessedImage>(frames.Length);
        foreach (var f in frames) list.Add(Vlm.Preprocessor.Process(new RgbImage(side, side, f)));
        return new Item(ids, labels, list);
    }

    /// <summary>
    /// The clip's sampled frames as RGB bytes (side × side, fitted and padded): from the cache when an earlier epoch
    /// decoded them, else from ffmpeg (or, for a still record, the image decoded, fitted and repeated), then kept while
    /// the cache holds less than <c>video.frame_cache_mb</c> (the frames are the same bytes either way, so the cache never
    /// changes a run's numbers).
    /// </summary>
    byte[][] DecodedFrames(VideoCaptionRecord r, int side)
    {
        string key = r.Data is null ? Path.GetFullPath(r.Video) : r.Video;
        if (_frameCache.TryGetValue(key, out var hit)) { Interlocked.Increment(ref _frameCacheHits); return hit; }
        byte[][] decoded;
        long size;
        if (r.Still)
        {
            var still = FitPad(RecordMedia.Still(r), side);
            decoded = Enumerable.Repeat(still, Vlm.Config.Video.NumFrames).ToArray();
            size = still.Length;                                                                 // one array, every frame
        }
        else
        {
            using var frames = RecordMedia.Frames(r, new FrameSamplingOptions { NumFrames = Vlm.Config.Video.NumFrames, Width = side, Height = side, Resize = FrameResize.FitPad });
            decoded = new byte[frames.Count][];
            for (int i = 0; i < frames.Count; i++)
            {
                using var f = frames.Pixels[i].contiguous();
                decoded[i] = f.bytes.ToArray();
            }
            size = decoded.Sum(f => (long)f.Length);
        }
        if (Interlocked.Add(ref _frameCacheBytes, size) <= (long)Config.VideoSettings.FrameCacheMb << 20 && _frameCache.TryAdd(key, decoded)) return decoded;
        Interlocked.Add(ref _frameCacheBytes, -size);
        return decoded;
    }

    /// <summary>
    /// <paramref name="image"/> scaled to fit inside side × side keeping its aspect ratio (PIL bilinear), then padded
    /// right and bottom with black: the frames' <see cref="FrameResize.FitPad"/> on a still image.
    /// </summary>
    internal static byte[] FitPad(RgbImage image, int side)
    {
        double scale = Math.Min((double)side / image.Width, (double)side / image.Height);
        int w = Math.Clamp((int)Math.Round(image.Width * scale), 1, side), h = Math.Clamp((int)Math.Round(image.Height * scale), 1, side);
        var fitted = w == image.Width && h == image.Height ? image : PilBilinear.Resize(image, w, h);
        var rgb = new byte[side * side * 3];
        for (int y = 0; y < h; y++) Array.Copy(fitted.Pixels, y * w * 3, rgb, y * side * 3, w * 3);
        return rgb;
    }

    /// <inheritdoc/>
    public override IBatchSource OpenData(bool eval, DataCursor start)
    {
        return OpenSamples<VideoCaptionRecord, Item>(eval, start, (p, skip) => (JsonlManifest.ReadVideoCaptions(p, skip, out int n), n),
            ShardRecords.VideoCaption, (r, _, _) => Prepare(r), Collate);
    }

    MicroBatch Collate(List<Item> items, int seqLen, DataCursor end)
    {
        var ids = Padding.Rows(items.Select(i => i.Ids).ToList(), Tokenizer.PadId, seqLen, out int len);
        var labels = Padding.Rows(items.Select(i => i.Labels).ToList(), -100, seqLen, out _);
        var rows = items.SelectMany(i => i.Frames).Select(f => (IReadOnlyList<ProcessedImage>)new[] { f }).ToList();
        using var batch = Vlm.Preprocessor.Pack(rows);
        foreach (var i in items) foreach (var f in i.Frames) f.Dispose();
        var b = new MicroBatch
        {
            Tokens = items.Sum(i => (long)Math.Min(len, i.Ids.Length)), Samples = items.Count,
            LossElements = items.Sum(i => i.Labels.Take(len).Count(l => l != -100)), End = end,
        };
        b.Tensors["input_ids"] = ids;
        b.Tensors["labels"] = labels;
        b.Tensors["pixel_values"] = batch.PixelValues.clone();
        b.Tensors["aspect_ratio_ids"] = batch.AspectRatioIds.clone();
        b.Tensors["aspect_ratio_mask"] = batch.AspectRatioMask.clone();
        return b;
    }

    /// <summary>Aggregated video states [B, groups · latents, D] of a micro-batch's frames (image encoder without gradients when frozen).</summary>
    internal Tensor VideoStates(MicroBatch batch)
    {
        using var scope = NewDisposeScope();
        long b = batch["input_ids"].shape[0];
        using var images = batch.Images();
        bool encoderTrains = Vlm.vision_model.parameters().Concat(Vlm.multi_modal_projector.parameters()).Any(p => p.requires_grad);
        Tensor feats;
        using (encoderTrains ? null : torch.no_grad()) feats = Vlm.ImageModel.EncodeImages(images);               // [B·F, tokens, D]
        var f = feats.view(b, Vlm.Config.Video.NumFrames, Vlm.Config.TokensPerFrame, -1);
        var agg = Vlm.video_model.aggregator.Forward(f);                                               // [B, G, L, D]
        return agg.reshape(b, -1, agg.shape[3]).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public override LossOutput Loss(MicroBatch batch)
    {
        using var scope = NewDisposeScope();
        var states = VideoStates(batch);
        var logits = Vlm.Forward(batch["input_ids"].to(_device), null, states);
        return new LossOutput(PreferenceLosses.CrossEntropySum(logits, batch["labels"].to(_device)).MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Saves the model (config.json, video_config.json, the weights, and generation_config.json with the completion
    /// prompt format this recipe trains), plus <see cref="MediaTokens.InfoFile"/>.
    /// </summary>
    public override void SaveModel(string directory)
    {
        Vlm.PromptFormat = VisionPromptFormat.Completion;
        Vlm.Save(directory);
        MediaTokens.WriteInfo(directory, Name, Config);
    }

    /// <inheritdoc/>
    public override void LoadModel(string directory)
    {
        using var reader = CheckpointReader.Open(directory);
        StateLoader.Load(Vlm, reader);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) _model?.Dispose();
        base.Dispose(disposing);
    }
}

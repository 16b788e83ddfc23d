using System.Text.Json;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Video;

/// <summary>
/// Llama 3 with video input (Llama 3 paper §7.2): an image-text model (<see cref="ImageModel"/>, the
/// Llama 3.2 Vision layout) plus the video adapter. Frames sampled from a clip go through the image model's encoder and
/// projector (4 tiles per frame), the temporal aggregator merges each group of frames, and gated video cross-attention
/// layers, each run right before its decoder layer, read the result. With the video gates at zero the model equals its
/// image-text model.
/// <para>Module names are the checkpoint keys: the image-text model's (<c>vision_model.*</c>,
/// <c>multi_modal_projector.*</c>, <c>language_model.*</c>, as Llama 3.2 Vision writes them) and the adapter's
/// <c>video_model.aggregator.*</c> and <c>video_model.cross_attention_layers.{j}.*</c>. <c>config.json</c> is the
/// image-text model's and <c>video_config.json</c> holds the video settings.</para>
/// </summary>
public sealed class VideoLanguageModel : nn.Module, IComponentModel
{
#pragma warning disable IDE1006
    /// <summary>Image encoder of <see cref="ImageModel"/> (shared by images and video frames).</summary>
    public VisionModel vision_model => ImageModel.vision_model;
    /// <summary>Projector of <see cref="ImageModel"/>.</summary>
    public Linear multi_modal_projector => ImageModel.multi_modal_projector;
    /// <summary>Decoder of <see cref="ImageModel"/> with its image cross-attention layers.</summary>
    public LlamaForCausalLM language_model => ImageModel.language_model;
    /// <summary>The video adapter: aggregator and video cross-attention layers.</summary>
    public readonly VideoAdapter video_model;
#pragma warning restore IDE1006

    /// <summary>The image-text model this model extends; its modules are this model's, under the same names.</summary>
    public VisionLanguageModel ImageModel { get; }
    /// <summary>The configuration.</summary>
    public VideoLanguageConfig Config { get; }
    /// <summary>Device holding the weights.</summary>
    public Device Device => ImageModel.Device;
    /// <summary>Weight dtype.</summary>
    public ScalarType DType => ImageModel.DType;
    /// <summary>Tokenizer for the prompt-level API (the image model's).</summary>
    public Llama3Tokenizer Tokenizer { get => ImageModel.Tokenizer; set => ImageModel.Tokenizer = value; }
    /// <summary>
    /// Prompt layout of <see cref="Generate(string, string, GenerationOptions?, Action{int}?)"/> (the image model's):
    /// Instruct (default) or Completion (base models); stored in the folder's <c>generation_config.json</c>.
    /// </summary>
    public VisionPromptFormat PromptFormat { get => ImageModel.PromptFormat; set => ImageModel.PromptFormat = value; }
    /// <summary>Image preprocessing of the image model (also used for video frames).</summary>
    public ImagePreprocessor Preprocessor => ImageModel.Preprocessor;
    /// <summary>Folder holding ffmpeg and ffprobe; null = <c>LLAMA3MM_FFMPEG_DIR</c> or <c>PATH</c>.</summary>
    public string? FfmpegDirectory { get; set; }
    /// <summary>Frames sent through the image encoder at once (bounds activation memory).</summary>
    public int FrameBatch { get; set; } = 8;

    VideoLanguageModel(VisionLanguageModel image, VideoConfig video) : base("VideoLanguageModel")
    {
        Config = new VideoLanguageConfig { Base = image.Config, Video = video }.Validate();
        var stack = image.language_model.model;
        if (stack.CacheSlots != stack.layers.Count)
            throw new ArgumentException("the image-text model already runs blocks of another model inside its decoder.", nameof(image));
        ImageModel = image;
        var at = Config.VideoCrossAttentionLayers;
        var layers = at.Select(_ => new VideoCrossAttentionLayer(image.Config.Text, image.Device, image.DType)).ToList();
        video_model = new VideoAdapter(new TemporalAggregator(video.Aggregator, image.Device, image.DType), layers);
        register_module("vision_model", image.vision_model);
        register_module("multi_modal_projector", image.multi_modal_projector);
        register_module("language_model", image.language_model);
        register_module("video_model", video_model);
        for (int j = 0; j < at.Count; j++) stack.InsertBefore(at[j], layers[j]);
    }

    /// <summary>Builds the model with uninitialised weights (the meta device counts parameters without allocating).</summary>
    public static VideoLanguageModel Create(VideoLanguageConfig config, Device? device = null, ScalarType dtype = ScalarType.Float32) =>
        new(VisionLanguageModel.Create(config.Base, device, dtype), config.Video);

    /// <summary>
    /// Extends <paramref name="image"/> with a video adapter per <paramref name="video"/>, initialised from
    /// <paramref name="seed"/> with its gates at zero, so the model first behaves exactly like <paramref name="image"/>.
    /// The video model takes <paramref name="image"/> over (its weights are shared, not copied; disposing the video
    /// model disposes them).
    /// </summary>
    public static VideoLanguageModel FromImageModel(VisionLanguageModel image, VideoConfig video, long seed = 0, double std = 0.02) =>
        new VideoLanguageModel(image, video).InitializeVideoWeights(seed, std);

    /// <summary>
    /// <see cref="FromImageModel(VisionLanguageModel, VideoConfig, long, double)"/> on the image-text (Llama 3.2 Vision)
    /// folder <paramref name="directory"/>, loaded strictly (either transformers key spelling).
    /// </summary>
    public static VideoLanguageModel FromImageModel(string directory, VideoConfig video, long seed = 0, Device? device = null,
        ScalarType dtype = ScalarType.Float32, Action<int, int>? progress = null)
    {
        var image = VisionLanguageModel.FromPretrained(directory, device, dtype, progress);
        try { return FromImageModel(image, video, seed); }
        catch
        {
            image.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Seeded random initialisation of everything: N(0, std²) weights, unit norm scales, zero biases, zero tanh gates
    /// (image and video adapters are then no-ops); aggregator latents and time embeddings N(0, 1).
    /// </summary>
    public VideoLanguageModel InitializeWeights(long seed, double std = 0.02)
    {
        WeightInit.Apply(this, seed, std);
        video_model.aggregator.InitializeWeights(seed + 1, std);
        return this;
    }

    /// <summary>Seeded random initialisation of the video adapter only (Llama 3 paper §7.4: aggregator and video layers start random, gates at zero).</summary>
    public VideoLanguageModel InitializeVideoWeights(long seed, double std = 0.02)
    {
        var at = Config.VideoCrossAttentionLayers;
        // Layer j runs at stack position at[j] + j.
        for (int j = 0; j < at.Count; j++) WeightInit.Apply(video_model.cross_attention_layers[j], seed + at[j] + j, std);
        video_model.aggregator.InitializeWeights(seed, std);
        return this;
    }

    /// <summary>
    /// Warm start of the video cross-attention: every video layer takes the weights of the image cross-attention layer
    /// it runs before (attention, norms, MLP), its gates staying at zero, so the model still behaves exactly like the
    /// image-text model, but each video layer starts out knowing how its image layer reads image tokens.
    /// </summary>
    public VideoLanguageModel CopyImageCrossAttentionIntoVideoLayers()
    {
        using var noGrad = torch.no_grad();
        var at = Config.VideoCrossAttentionLayers;
        for (int j = 0; j < at.Count; j++)
        {
            if (language_model.model.layers[at[j]] is not GatedCrossAttentionBlock image)
                throw new InvalidOperationException($"decoder layer {at[j]} after video layer {j} is not an image cross-attention layer.");
            var from = image.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, p) in video_model.cross_attention_layers[j].named_parameters())
                if (name is not ("cross_attn_attn_gate" or "cross_attn_mlp_gate")) p.copy_(from[name]);
        }
        return this;
    }

    /// <summary>
    /// The components training chooses from: the image model's (<c>vision_model</c>, <c>multi_modal_projector</c>,
    /// <c>cross_attention_layers</c>, <c>language_model</c>, <c>embed_tokens</c>; see
    /// <see cref="VisionLanguageModel.Components"/>) and the video adapter's: <c>video_model</c> (all of it),
    /// <c>video_aggregator</c> and <c>video_cross_attention_layers</c>.
    /// </summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> Components => _components ??= new Dictionary<string, IReadOnlyList<string>>(ImageModel.Components)
    {
        ["video_model"] = new[] { "video_model" },
        ["video_aggregator"] = new[] { "video_model.aggregator" },
        ["video_cross_attention_layers"] = new[] { "video_model.cross_attention_layers" },
    };
    IReadOnlyDictionary<string, IReadOnlyList<string>>? _components;

    /// <summary>Total parameter count (works on the meta device).</summary>
    public long ParameterCount() => parameters().Sum(p => p.numel());

    /// <summary>Parameters of the video adapter (aggregator + video cross-attention layers).</summary>
    public long VideoParameterCount() => video_model.ParameterCount();

    // ---- encoding ---------------------------------------------------------------------------------------------

    /// <summary>
    /// Samples <see cref="VideoConfig.NumFrames"/> frames of <paramref name="path"/>, fitted (aspect kept, black padding)
    /// into the square canvas of the largest square tile grid (2 × 2 tiles: 1120 px for 560-px tiles) so every frame
    /// fills 4 tiles.
    /// </summary>
    public VideoFrames ReadFrames(string path) => VideoFrameReader.Read(path, FrameSampling);

    /// <summary>How <see cref="ReadFrames"/> samples a clip: <see cref="VideoConfig.NumFrames"/> frames fitted into the
    /// square canvas of the largest square tile grid, with <see cref="FfmpegDirectory"/>.</summary>
    public FrameSamplingOptions FrameSampling
    {
        get
        {
            int g = (int)Math.Sqrt(Config.Base.Vision.MaxNumTiles), side = g * Config.Base.Vision.ImageSize;
            return new FrameSamplingOptions { NumFrames = Config.Video.NumFrames, Width = side, Height = side, Resize = FrameResize.FitPad, FfmpegDirectory = FfmpegDirectory };
        }
    }

    /// <summary>Frame features [F, tokens per frame, D]: each frame through the image encoder and projector, <see cref="FrameBatch"/> frames at a time.</summary>
    public Tensor EncodeFrames(VideoFrames frames)
    {
        using var scope = NewDisposeScope();
        var parts = new List<Tensor>();
        for (int s = 0; s < frames.Count; s += FrameBatch)
        {
            int n = Math.Min(FrameBatch, frames.Count - s);
            var rows = Enumerable.Range(s, n).Select(i => (IReadOnlyList<RgbImage>)new[] { ToImage(frames, i) }).ToList();
            using var batch = Preprocessor.Batch(rows);
            parts.Add(ImageModel.EncodeImages(batch).view(n, Config.TokensPerFrame, -1));
        }
        return torch.cat(parts.ToArray(), 0).MoveToOuterDisposeScope();
    }

    /// <summary>Aggregated video states [1, groups · latents, D] for the video cross-attention layers.</summary>
    public Tensor EncodeVideo(VideoFrames frames)
    {
        using var scope = NewDisposeScope();
        var f = EncodeFrames(frames).unsqueeze(0);                                                 // [1, F, T, D]
        var agg = video_model.aggregator.Forward(f);                                               // [1, G, L, D]
        return agg.reshape(1, -1, agg.shape[3]).MoveToOuterDisposeScope();
    }

    static RgbImage ToImage(VideoFrames frames, int i)
    {
        using var frame = frames.Pixels[i].contiguous();
        return new RgbImage(frames.Width, frames.Height, frame.bytes.ToArray());
    }

    // ---- forward and generation -------------------------------------------------------------------------------

    /// <summary>
    /// Full forward pass: token ids [B, T] (with <c>&lt;|image|&gt;</c> and at most one <c>&lt;|video|&gt;</c> per row),
    /// their images (or null) and aggregated video states [B, S, D] (from <see cref="EncodeVideo"/>, or null) → f32
    /// logits [B, T, vocab]. Without media this is the text model.
    /// </summary>
    public Tensor Forward(Tensor ids, ImageBatch? images = null, Tensor? videoStates = null, ForwardOptions? options = null)
    {
        using var scope = NewDisposeScope();
        options ??= new ForwardOptions();
        var rows = TokenRows(ids);
        int start = options.Cache?.Length ?? 0, length = (int)ids.shape[1];
        var media = new Dictionary<string, object>();
        var imageRanges = rows.Select(r => CrossAttentionMask.ImageRanges(r, Config.Base.ImageTokenIndex)).ToList();
        if (images is not null && imageRanges.Any(r => r.Count > 0))
        {
            if (images.BatchSize != rows.Count) throw new ArgumentException($"{rows.Count} token rows but images for {images.BatchSize}.");
            media[CrossAttentionInputs.MediaKey] = ImageModel.CrossAttentionFor(imageRanges, images.NumTiles, ImageModel.EncodeImages(images), start, length);
        }
        else if (imageRanges.Any(r => r.Count > 0)) throw new ArgumentException("the tokens hold <|image|> but no images were given.");
        var videoAt = rows.Select(VideoPosition).ToList();
        if (videoStates is not null && videoAt.Any(p => p >= 0))
        {
            if (videoStates.shape[0] != rows.Count) throw new ArgumentException($"{rows.Count} token rows but video states for {videoStates.shape[0]}.");
            media[VideoCrossAttentionInputs.MediaKey] = VideoInputs(videoAt, videoStates, start, length);
        }
        else if (videoAt.Any(p => p >= 0)) throw new ArgumentException("the tokens hold <|video|> but no video was given.");
        return language_model.Forward(ids, options with { Media = media.Count == 0 ? null : media }).MoveToOuterDisposeScope();
    }

    /// <summary>Video inputs for query rows [start, start + length) given each row's <c>&lt;|video|&gt;</c> position (−1: none).</summary>
    VideoCrossAttentionInputs VideoInputs(IReadOnlyList<int> videoAt, Tensor? states, int start, int length)
    {
        var r = new float[videoAt.Count * length];
        for (int b = 0; b < videoAt.Count; b++)
            for (int t = 0; t < length; t++)
                r[b * length + t] = videoAt[b] >= 0 && start + t >= videoAt[b] ? 1f : 0f;
        var row = torch.tensor(r, new long[] { videoAt.Count, length, 1 }).to(DType, Device);
        return new VideoCrossAttentionInputs { VideoStates = states?.to(DType, Device), RowMask = row };
    }

    int VideoPosition(IReadOnlyList<int> ids)
    {
        int first = -1, count = 0;
        for (int i = 0; i < ids.Count; i++)
            if (ids[i] == Config.Video.VideoTokenId) { if (first < 0) first = i; count++; }
        if (count > 1) throw new ArgumentException($"a prompt holds {count} <|video|> tokens; one video per prompt is supported.");
        return first;
    }

    static List<IReadOnlyList<int>> TokenRows(Tensor ids)
    {
        using var cpu = ids.to(ScalarType.Int64, CPU);
        long b = cpu.shape[0], t = cpu.shape[1];
        var data = cpu.data<long>().ToArray();
        return Enumerable.Range(0, (int)b).Select(r => (IReadOnlyList<int>)data.Skip((int)(r * t)).Take((int)t).Select(x => (int)x).ToList()).ToList();
    }

    /// <summary>
    /// Generates from token ids <paramref name="prompt"/> (holding one <c>&lt;|video|&gt;</c>) about already sampled
    /// <paramref name="frames"/>. The video is encoded once; each video layer computes its K/V at prefill and keeps them
    /// in its KV-cache slot. Generation stops after the step in which <paramref name="cancel"/> is set (the result holds the
    /// tokens so far); a token set before the video is encoded throws <see cref="OperationCanceledException"/>.
    /// </summary>
    public GenerationResult Generate(IReadOnlyList<int> prompt, VideoFrames frames, GenerationOptions? options = null, Action<int>? onToken = null,
        CancellationToken cancel = default)
    {
        int at = VideoPosition(prompt);
        if (at < 0) throw new ArgumentException($"the prompt holds no <|video|> token (id {Config.Video.VideoTokenId}).");
        cancel.ThrowIfCancellationRequested();
        Tensor states;
        using (torch.no_grad()) states = EncodeVideo(frames);
        using var _ = states;
        var generator = new TextGenerator(language_model, Tokenizer);
        // Beam search runs the prompt as NumBeams rows.
        int w = Math.Max(1, options?.NumBeams ?? 1);
        using var rowStates = w == 1 ? null : states.repeat_interleave(w, 0);
        var rowsAt = Enumerable.Repeat(at, w).ToArray();
        return generator.Generate(prompt, options, onToken, (cache, fo) =>
        {
            int start = cache.Length, length = (int)fo.Positions!.shape[1];
            var media = VideoInputs(rowsAt, start == 0 ? rowStates ?? states : null, start, length);
            return fo with { Media = new Dictionary<string, object> { [VideoCrossAttentionInputs.MediaKey] = media } };
        }, cancel: cancel);
    }

    /// <summary>
    /// Answers <paramref name="prompt"/> about the clip at <paramref name="videoPath"/> (in <see cref="PromptFormat"/>; a
    /// <c>&lt;|video|&gt;</c> placeholder is put before the text unless the prompt has one): samples the frames, encodes
    /// and aggregates them, and generates. This is <c>mm generate --model DIR --video clip.mp4 --prompt "…"</c>.
    /// Throws <see cref="MediaDecodeException"/> for an unreadable clip or missing ffmpeg.
    /// </summary>
    public GenerationResult Generate(string videoPath, string prompt, GenerationOptions? options = null, Action<int>? onToken = null)
    {
        var ids = VideoPrompt.Encode(PromptFormat, Tokenizer, prompt, Config.Video.VideoTokenId);
        using var frames = ReadFrames(videoPath);
        return Generate(ids, frames, options, onToken);
    }

    // ---- checkpoints ------------------------------------------------------------------------------------------

    /// <summary>True when <paramref name="directory"/> holds a video-language model (a <c>video_config.json</c> beside <c>config.json</c>).</summary>
    public static bool IsVideoModelDirectory(string directory) =>
        File.Exists(Path.Combine(directory, VideoConfigJson.FileName)) && File.Exists(Path.Combine(directory, "config.json"));

    /// <summary>
    /// Loads a video-language folder written by <see cref="Save"/>: the image-text model's <c>config.json</c>,
    /// <c>video_config.json</c> and safetensors holding every key (strict).
    /// </summary>
    public static VideoLanguageModel FromPretrained(string directory, Device? device = null, ScalarType dtype = ScalarType.Float32, Action<int, int>? progress = null) =>
        FromPretrained(directory, new LoadOptions { Device = device, DType = dtype, Progress = progress });

    /// <summary>
    /// Loads a folder with <paramref name="options"/>; <see cref="LoadOptions.Quantize"/> stores the language model's
    /// linear layers (self- and cross-attention, MLPs, and by default the embedding and head) as q8 while reading. The
    /// vision encoder and the aggregator keep <see cref="LoadOptions.DType"/>.
    /// </summary>
    public static VideoLanguageModel FromPretrained(string directory, LoadOptions options)
    {
        using var quantization = QuantizationSettings.Use(options.QuantizationFor(directory));
        return Load(directory, options.Device, options.DType, options.Progress);
    }

    static VideoLanguageModel Load(string directory, Device? device, ScalarType dtype, Action<int, int>? progress)
    {
        string videoCfg = Path.Combine(directory, VideoConfigJson.FileName);
        if (!File.Exists(videoCfg))
            throw new CheckpointFormatException($"{directory}: {VideoConfigJson.FileName} not found; an image-text model starts video training through FromImageModel.");
        var cfg = new VideoLanguageConfig { Base = ReadBaseConfig(directory), Video = VideoConfigJson.Read(videoCfg) };
        var tokenizer = Task.Run(() => Llama3Tokenizer.FromModelDirectory(directory) ?? Llama3Tokenizer.Default); // read while the weights are placed
        var model = Create(cfg, device, dtype);
        try
        {
            using var reader = CheckpointReader.Open(directory);
            StateLoader.Load(model, reader, progress: progress, ignoreUnexpected: k => k.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal),
                memoryMap: true);
            model.Tokenizer = tokenizer.GetAwaiter().GetResult();
            model.PromptFormat = VisionPrompt.FormatOf(directory);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Replaces the image-text weights (image encoder, projector, decoder with its image cross-attention layers) with
    /// those of the image-text folder <paramref name="directory"/> and keeps the video adapter: Llama 3's video SFT takes
    /// the video parameters from video pretraining and the image weights and the LLM from their finetuned versions. The
    /// folder's config must describe the same image-text model (same shapes); it is checked before any weight changes.
    /// </summary>
    public void LoadBaseWeights(string directory, Action<int, int>? progress = null)
    {
        var other = ReadBaseConfig(directory);
        static string Json(VisionLanguageConfig c) => VisionLanguageConfigJson.ToHuggingFace(c).ToJsonString();
        if (Json(other) != Json(Config.Base))
            throw new CheckpointFormatException($"{directory}: its config.json describes another base model than this video model's; base weights can only be replaced by a model of the same configuration.");
        ImageModel.LoadWeights(directory, progress);
    }

    static VisionLanguageConfig ReadBaseConfig(string directory)
    {
        string path = Path.Combine(directory, "config.json");
        if (!File.Exists(path)) throw new CheckpointFormatException($"{directory}: config.json (Hugging Face Mllama layout) not found.");
        return VisionLanguageConfigJson.Read(path);
    }

    /// <summary>
    /// Saves the image-text model (<c>config.json</c>, <c>generation_config.json</c> with the prompt format),
    /// <c>video_config.json</c> and the weights under their names (<c>model.safetensors</c>, or shards of at most
    /// <paramref name="maxShardBytes"/>), optionally converting to <paramref name="dtype"/>. Files are written atomically.
    /// </summary>
    public void Save(string directory, ScalarType? dtype = null, long maxShardBytes = 5L << 30)
    {
        Directory.CreateDirectory(directory);
        var tensors = QuantizedLayers.TensorsToWrite(this, n => n, (_, p) => dtype ?? p.dtype);
        SafeTensorsWriter.WriteSharded(directory, tensors, maxShardBytes);
        ImageModel.SaveConfig(directory, dtype);
        AtomicFile.WriteAllText(Path.Combine(directory, VideoConfigJson.FileName),
            VideoConfigJson.ToJson(Config.Video).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }
}

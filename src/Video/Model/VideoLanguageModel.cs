using System.Text.Json;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Video;

/// <summary>
/// Llama 3 with video input (Llama 3 paper §7.2) on top of the Llama 3.2 Vision layout: frames sampled from the clip go
/// through the image encoder and projector (4 tiles per frame), the temporal aggregator merges each group of frames,
/// and gated video cross-attention layers, inserted before every 4th image cross-attention block, read the result.
/// The image path is unchanged: with the video gates at zero the model equals its image-text base.
/// <para>Checkpoints: the base model's keys as Llama 3.2 Vision writes them (the stack keeps the base numbering), plus
/// <c>video_model.aggregator.*</c> and <c>video_model.cross_attention_layers.{j}.*</c>; <c>config.json</c> is the
/// base model's and <c>video_config.json</c> holds the video settings.</para>
/// </summary>
public sealed class VideoLanguageModel : nn.Module
{
#pragma warning disable IDE1006
    /// <summary>Image encoder (shared by images and video frames).</summary>
    public readonly VisionModel vision_model;
    /// <summary>Projector from encoder features to the text width, with bias.</summary>
    public readonly Linear multi_modal_projector;
    /// <summary>Decoder with image and video cross-attention blocks.</summary>
    public readonly LlamaForCausalLM language_model;
    /// <summary>Video adapter (aggregator).</summary>
    public readonly VideoAdapter video_model;
#pragma warning restore IDE1006

    const string StackPrefix = "language_model.model.layers.";

    /// <summary>The configuration.</summary>
    public VideoLanguageConfig Config { get; }
    /// <summary>Placement of the video layers in the stack.</summary>
    public VideoStackPlan Plan { get; }
    /// <summary>Device holding the weights.</summary>
    public Device Device { get; }
    /// <summary>Weight dtype.</summary>
    public ScalarType DType { get; }
    /// <summary>Tokenizer for the prompt-level API.</summary>
    public Llama3Tokenizer Tokenizer { get; set; } = Llama3Tokenizer.Default;
    /// <summary>
    /// Prompt layout of <see cref="Generate(string, string, GenerationOptions?, Action{int}?)"/>: Instruct (default) or
    /// Completion (base models; <see cref="FromPretrained(string, LoadOptions)"/> picks it for a folder written by the <c>video</c> recipe).
    /// </summary>
    public VisionPromptFormat PromptFormat { get; set; } = VisionPromptFormat.Instruct;
    /// <summary>Image preprocessing of the base model (also used for video frames).</summary>
    public ImagePreprocessor Preprocessor { get; }
    /// <summary>Folder holding ffmpeg and ffprobe; null = <c>LLAMA3MM_FFMPEG_DIR</c> or <c>PATH</c>.</summary>
    public string? FfmpegDirectory { get; set; }
    /// <summary>Frames sent through the image encoder at once (bounds activation memory).</summary>
    public int FrameBatch { get; set; } = 8;

    VideoLanguageModel(VideoLanguageConfig config, Device device, ScalarType dtype) : base("VideoLanguageModel")
    {
        Config = config.Validate();
        Plan = config.Plan();
        Device = device; DType = dtype;
        var b = config.Base;
        vision_model = new VisionModel(b.Vision, device, dtype);
        multi_modal_projector = Layers.Linear(b.Vision.OutputDim, b.Text.HiddenSize, true, device, dtype);
        var image = new HashSet<int>(b.CrossAttentionLayers);
        var plan = Plan;
        language_model = LlamaForCausalLM.Create(b.Text, device, dtype, extraBlockAt: i =>
            plan.VideoLayerAt(i) is not null ? new VideoCrossAttentionLayer(b.Text, device, dtype)
            : image.Contains(plan.Blocks[i]) ? new CrossAttentionDecoderLayer(b.Text, device, dtype)
            : null!, totalBlocks: plan.Count);
        video_model = new VideoAdapter(new TemporalAggregator(config.Video.Aggregator, device, dtype));
        Preprocessor = new ImagePreprocessor(b.Vision);
        RegisterComponents();
    }

    /// <summary>Builds the model with uninitialised weights (the meta device counts parameters without allocating).</summary>
    public static VideoLanguageModel Create(VideoLanguageConfig config, Device? device = null, ScalarType dtype = ScalarType.Float32) =>
        new(config, device ?? CPU, dtype);

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

    /// <summary>Seeded random initialisation of the video parameters only (Llama 3 paper §7.4: aggregator and video layers start random, gates at zero).</summary>
    public VideoLanguageModel InitializeVideoWeights(long seed, double std = 0.02)
    {
        foreach (int i in Plan.VideoBlockIndices) WeightInit.Apply(language_model.model.layers[i], seed + i, std);
        video_model.aggregator.InitializeWeights(seed, std);
        return this;
    }

    /// <summary>
    /// Warm start of the video cross-attention: every video layer takes the weights of the image cross-attention layer
    /// right after it in the stack (attention, norms, MLP), its gates staying at zero, so the model still behaves exactly
    /// like the base, but each video layer starts out knowing how its image layer reads image tokens.
    /// </summary>
    public VideoLanguageModel CopyImageCrossAttentionIntoVideoLayers()
    {
        using var noGrad = torch.no_grad();
        var layers = language_model.model.layers;
        foreach (int i in Plan.VideoBlockIndices)
        {
            if (i + 1 >= layers.Count || layers[i + 1] is not GatedCrossAttentionBlock image || layers[i] is not VideoCrossAttentionLayer video)
                throw new InvalidOperationException($"stack block {i + 1} after video layer {i} is not an image cross-attention layer.");
            var from = image.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, p) in video.named_parameters())
                if (name is not ("cross_attn_attn_gate" or "cross_attn_mlp_gate")) p.copy_(from[name]);
        }
        return this;
    }

    /// <summary>Total parameter count (works on the meta device).</summary>
    public long ParameterCount() => parameters().Sum(p => p.numel());

    /// <summary>Parameters of the video adapter (aggregator + video cross-attention layers).</summary>
    public long VideoParameterCount() => named_parameters().Where(np => IsVideoParameter(np.name)).Sum(np => np.parameter.numel());

    /// <summary>True for parameters of the video adapter (the part the video recipes train).</summary>
    public bool IsVideoParameter(string name) => CheckpointKey(name).StartsWith("video_model.", StringComparison.Ordinal);

    /// <summary>Trains the video adapter only (Llama 3 paper §7.4): everything else frozen.</summary>
    public void FreezeAllButVideo()
    {
        foreach (var (name, p) in named_parameters()) p.requires_grad = IsVideoParameter(name);
    }

    /// <summary>
    /// Checkpoint key of a parameter: base blocks keep the base stack numbering (<c>language_model.model.layers.{i}</c>),
    /// video layers are <c>video_model.cross_attention_layers.{j}</c>, everything else is its module path.
    /// </summary>
    public string CheckpointKey(string name)
    {
        if (!name.StartsWith(StackPrefix, StringComparison.Ordinal)) return name;
        int dot = name.IndexOf('.', StackPrefix.Length);
        int k = int.Parse(name.AsSpan(StackPrefix.Length, dot - StackPrefix.Length));
        string rest = name[(dot + 1)..];
        return Plan.VideoLayerAt(k) is int j ? $"video_model.cross_attention_layers.{j}.{rest}" : $"{StackPrefix}{Plan.Blocks[k]}.{rest}";
    }

    // ---- encoding ---------------------------------------------------------------------------------------------

    /// <summary>Projected image states [B, images · tiles · tokens, D] (the base model's cross-attention source).</summary>
    public Tensor EncodeImages(ImageBatch images)
    {
        using var scope = NewDisposeScope();
        var f = vision_model.Forward(images.PixelValues, images.AspectRatioIds, images.AspectRatioMask);  // [B, N, tiles, tok, 7680]
        return multi_modal_projector.forward(f).reshape(f.shape[0], -1, Config.Base.Text.HiddenSize).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Samples <see cref="VideoConfig.NumFrames"/> frames of <paramref name="path"/>, fitted (aspect kept, black padding)
    /// into the square canvas of the largest square tile grid (2 × 2 tiles: 1120 px for 560-px tiles) so every frame
    /// fills 4 tiles.
    /// </summary>
    public VideoFrames ReadFrames(string path)
    {
        int g = (int)Math.Sqrt(Config.Base.Vision.MaxNumTiles), side = g * Config.Base.Vision.ImageSize;
        return VideoFrameReader.Read(path, new FrameSamplingOptions
        {
            NumFrames = Config.Video.NumFrames, Width = side, Height = side, Resize = FrameResize.FitPad, FfmpegDirectory = FfmpegDirectory,
        });
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
            parts.Add(EncodeImages(batch).view(n, Config.TokensPerFrame, -1));
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
            var c = Config.Base;
            var (mask, row) = CrossAttentionMask.Build(imageRanges, images.NumTiles, images.MaxImages, c.Vision.MaxNumTiles, c.Vision.TokensPerTile,
                start, length, c.Text.NumHeads / c.Text.NumKvHeads, DType, Device);
            media[CrossAttentionInputs.MediaKey] = new CrossAttentionInputs { VisionStates = EncodeImages(images), Mask = mask, RowMask = row };
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
    /// in its KV-cache slot.
    /// </summary>
    public GenerationResult Generate(IReadOnlyList<int> prompt, VideoFrames frames, GenerationOptions? options = null, Action<int>? onToken = null)
    {
        int at = VideoPosition(prompt);
        if (at < 0) throw new ArgumentException($"the prompt holds no <|video|> token (id {Config.Video.VideoTokenId}).");
        using var states = WithNoGrad(() => EncodeVideo(frames));
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
        });
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

    static Tensor WithNoGrad(Func<Tensor> f)
    {
        using var _ = torch.no_grad();
        return f();
    }

    // ---- checkpoints ------------------------------------------------------------------------------------------

    /// <summary>True when <paramref name="directory"/> holds a video-language model (a <c>video_config.json</c> beside <c>config.json</c>).</summary>
    public static bool IsVideoModelDirectory(string directory) =>
        File.Exists(Path.Combine(directory, VideoConfigJson.FileName)) && File.Exists(Path.Combine(directory, "config.json"));

    /// <summary>
    /// Loads a video-language folder written by <see cref="Save"/>: the base model's <c>config.json</c>,
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
        var model = Create(cfg, device, dtype);
        try
        {
            using var reader = CheckpointReader.Open(directory);
            StateLoader.Load(model, reader, keyFor: model.CheckpointKey, progress: progress,
                ignoreUnexpected: k => k.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal));
            model.Tokenizer = Llama3Tokenizer.FromModelDirectory(directory) ?? Llama3Tokenizer.Default;
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
    /// Starts a video model from an image-text (Llama 3.2 Vision) folder: the base weights load strictly (either
    /// transformers key spelling), the video adapter <paramref name="video"/> is initialised from <paramref name="seed"/>
    /// with its gates at zero, so the model first behaves exactly like the base.
    /// </summary>
    public static VideoLanguageModel FromImageModel(string directory, VideoConfig video, long seed = 0, Device? device = null,
        ScalarType dtype = ScalarType.Float32, Action<int, int>? progress = null)
    {
        var cfg = new VideoLanguageConfig { Base = ReadBaseConfig(directory), Video = video };
        var model = Create(cfg, device, dtype);
        try
        {
            LoadBase(model, directory, progress);
            model.InitializeVideoWeights(seed);
            model.Tokenizer = Llama3Tokenizer.FromModelDirectory(directory) ?? Llama3Tokenizer.Default;
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Replaces the base weights (image encoder, projector, decoder with its image cross-attention layers) with those of
    /// the image-text folder <paramref name="directory"/> and keeps the video adapter: Llama 3's video SFT takes the video
    /// parameters from video pretraining and the image weights and the LLM from their finetuned versions. The folder's
    /// config must describe the same base model (same shapes); it is checked before any weight changes.
    /// </summary>
    public void LoadBaseWeights(string directory, Action<int, int>? progress = null)
    {
        var other = ReadBaseConfig(directory);
        static string Json(VisionLanguageConfig c) => VisionLanguageConfigJson.ToHuggingFace(c).ToJsonString();
        if (Json(other) != Json(Config.Base))
            throw new CheckpointFormatException($"{directory}: its config.json describes another base model than this video model's; base weights can only be replaced by a model of the same configuration.");
        LoadBase(this, directory, progress);
    }

    // Loads the base (non-video) parameters of model from an image-text folder, strictly: every base key present, no extra key.
    static void LoadBase(VideoLanguageModel model, string directory, Action<int, int>? progress)
    {
        using var reader = CheckpointReader.Open(directory);
        bool newer = reader.Keys.Any(k => k.StartsWith("model.vision_model.", StringComparison.Ordinal) || k.StartsWith("model.language_model.", StringComparison.Ordinal));
        string Key(string n) { string k = model.CheckpointKey(n); return newer ? VisionLanguageModel.NewerKey(k) : k; }
        var baseParams = model.named_parameters().Where(np => !model.IsVideoParameter(np.name)).Select(np => Key(np.name)).ToHashSet();
        var missing = baseParams.Where(k => !reader.Contains(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        var unexpected = reader.Keys.Where(k => !baseParams.Contains(k) && !k.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal))
            .OrderBy(k => k, StringComparer.Ordinal).ToList();
        if (missing.Count > 0 || unexpected.Count > 0)
            throw new CheckpointFormatException($"{directory}: not the image-text model the video config expects." +
                (missing.Count > 0 ? $" Missing ({missing.Count}): {string.Join(", ", missing.Take(20))}." : "") +
                (unexpected.Count > 0 ? $" Unexpected ({unexpected.Count}): {string.Join(", ", unexpected.Take(20))}." : ""));
        StateLoader.Load(model, reader, keyFor: Key, strict: false, progress: progress);
    }

    static VisionLanguageConfig ReadBaseConfig(string directory)
    {
        string path = Path.Combine(directory, "config.json");
        if (!File.Exists(path)) throw new CheckpointFormatException($"{directory}: config.json (Hugging Face Mllama layout) not found.");
        return VisionLanguageConfigJson.Read(path);
    }

    /// <summary>
    /// Saves <c>config.json</c> (the base model's), <c>video_config.json</c> and the weights under their checkpoint keys
    /// (<c>model.safetensors</c>, or shards of at most <paramref name="maxShardBytes"/>), optionally converting to
    /// <paramref name="dtype"/>. Files are written atomically.
    /// </summary>
    public void Save(string directory, ScalarType? dtype = null, long maxShardBytes = 5L << 30)
    {
        Directory.CreateDirectory(directory);
        var tensors = QuantizedLayers.TensorsToWrite(this, CheckpointKey, (_, p) => dtype ?? p.dtype);
        SafeTensorsWriter.WriteSharded(directory, tensors, maxShardBytes);
        string tdt = (dtype ?? DType) switch { ScalarType.BFloat16 => "bfloat16", ScalarType.Float16 => "float16", _ => "float32" };
        var opts = new JsonSerializerOptions { WriteIndented = true };
        var baseCfg = VisionLanguageConfigJson.ToHuggingFace(Config.Base, tdt);
        if (language_model.Quantization is { } q && QuantizedLayers.Scales(this).Count > 0) baseCfg["quantization_config"] = q.ToJson();
        AtomicFile.WriteAllText(Path.Combine(directory, "config.json"), baseCfg.ToJsonString(opts));
        AtomicFile.WriteAllText(Path.Combine(directory, VideoConfigJson.FileName), VideoConfigJson.ToJson(Config.Video).ToJsonString(opts));
    }
}

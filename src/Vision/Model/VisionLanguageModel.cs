using System.Text.Json;
using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision;

/// <summary>
/// Llama 3.2 Vision (HF <c>MllamaForConditionalGeneration</c>): the image encoder, the projector and a Llama decoder with
/// gated cross-attention blocks at the configured stack indices. Module names equal the Hugging Face checkpoint keys
/// (<c>vision_model.*</c>, <c>multi_modal_projector.*</c>, <c>language_model.model.*</c>, <c>language_model.lm_head.weight</c>),
/// so hub checkpoints load by name; the newer spelling (<c>model.vision_model.*</c>, <c>model.language_model.*</c>,
/// <c>lm_head.weight</c>) loads too.
/// </summary>
public sealed class VisionLanguageModel : nn.Module
{
#pragma warning disable IDE1006
    /// <summary>Image encoder.</summary>
    public readonly VisionModel vision_model;
    /// <summary>Projector from encoder features (vision output dim) to the text width, with bias.</summary>
    public readonly Linear multi_modal_projector;
    /// <summary>Text decoder with cross-attention blocks.</summary>
    public readonly LlamaForCausalLM language_model;
#pragma warning restore IDE1006

    /// <summary>The configuration.</summary>
    public VisionLanguageConfig Config { get; }
    /// <summary>Device holding the weights.</summary>
    public Device Device { get; }
    /// <summary>Weight dtype.</summary>
    public ScalarType DType { get; }
    /// <summary>Tokenizer used by the prompt-level API (Meta's Llama 3 vocabulary unless a model folder provides one).</summary>
    public Llama3Tokenizer Tokenizer { get; set; } = Llama3Tokenizer.Default;
    /// <summary>Image preprocessing matching the encoder.</summary>
    public ImagePreprocessor Preprocessor { get; }
    /// <summary>
    /// Rows before the first image follow transformers (uniform attention over all image tokens added, only the MLP zeroed)
    /// instead of Meta's reference (block is the identity there). Default false = Meta, which the models were trained with.
    /// </summary>
    public bool HfCompatibleCrossAttention { get; set; }
    /// <summary>
    /// Prompt layout of the prompt-level API (<see cref="Generate(IReadOnlyList{RgbImage}, string, GenerationOptions?, Action{int}?)"/>,
    /// <see cref="Caption"/>): Instruct for instruction-tuned models (the default), Completion for base models.
    /// <see cref="FromPretrained(string, LoadOptions)"/> picks Completion for a folder written by a pretraining recipe (its
    /// <c>train_info.json</c> names <c>vision-stage1</c>, <c>vision-stage2</c> or <c>video</c>), such as the shipped demo model.
    /// </summary>
    public VisionPromptFormat PromptFormat { get; set; } = VisionPromptFormat.Instruct;
    /// <summary>How decoded images with alpha become RGB for the prompt-level API (default: drop alpha, as Meta).</summary>
    public AlphaHandling Alpha { get; set; } = AlphaHandling.Drop;

    VisionLanguageModel(VisionLanguageConfig config, Device device, ScalarType dtype) : base("VisionLanguageModel")
    {
        Config = config.Validate();
        Device = device; DType = dtype;
        vision_model = new VisionModel(config.Vision, device, dtype);
        multi_modal_projector = Layers.Linear(config.Vision.OutputDim, config.Text.HiddenSize, true, device, dtype);
        var cross = new HashSet<int>(config.CrossAttentionLayers);
        language_model = LlamaForCausalLM.Create(config.Text, device, dtype,
            extraBlockAt: i => cross.Contains(i) ? new CrossAttentionDecoderLayer(config.Text, device, dtype) : null!);
        Preprocessor = new ImagePreprocessor(config.Vision);
        RegisterComponents();
    }

    /// <summary>
    /// Builds the model with uninitialised weights on <paramref name="device"/> (use the meta device to count parameters
    /// without allocating). Call <see cref="InitializeWeights"/> or load a checkpoint next.
    /// </summary>
    public static VisionLanguageModel Create(VisionLanguageConfig config, Device? device = null, ScalarType dtype = ScalarType.Float32) =>
        new(config, device ?? CPU, dtype);

    /// <summary>Seeded random initialisation: N(0, 0.02²) weights, unit norm scales, zero biases and zero tanh gates (the adapters are then a no-op).</summary>
    public VisionLanguageModel InitializeWeights(long seed, double std = 0.02)
    {
        WeightInit.Apply(this, seed, std);
        return this;
    }

    /// <summary>Total parameter count (works on the meta device).</summary>
    public long ParameterCount() => parameters().Sum(p => p.numel());

    /// <summary>Which component a parameter name belongs to.</summary>
    public VisionComponent ComponentOf(string parameterName)
    {
        if (parameterName.StartsWith("vision_model.", StringComparison.Ordinal)) return VisionComponent.VisionEncoder;
        if (parameterName.StartsWith("multi_modal_projector.", StringComparison.Ordinal)) return VisionComponent.Adapters;
        const string layers = "language_model.model.layers.";
        if (parameterName.StartsWith(layers, StringComparison.Ordinal))
        {
            var rest = parameterName.AsSpan(layers.Length);
            int dot = rest.IndexOf('.');
            if (int.TryParse(rest[..dot], out int i) && Config.CrossAttentionLayers.Contains(i)) return VisionComponent.Adapters;
        }
        return VisionComponent.Text;
    }

    /// <summary>Sets <c>requires_grad</c> on every parameter of <paramref name="component"/>.</summary>
    public void SetTrainable(VisionComponent component, bool trainable)
    {
        foreach (var (name, p) in named_parameters())
            if (ComponentOf(name) == component) p.requires_grad = trainable;
    }

    /// <summary>Parameters of <paramref name="component"/> that currently require gradients.</summary>
    public IEnumerable<Parameter> TrainableParameters(VisionComponent component) =>
        named_parameters().Where(np => ComponentOf(np.name) == component && np.parameter.requires_grad).Select(np => np.parameter);

    /// <summary>
    /// Encodes a batch of images to the cross-attention source: [B, max_images · tiles · tokens, text hidden] in the weight
    /// dtype (HF <c>cross_attention_states</c>).
    /// </summary>
    public Tensor EncodeImages(ImageBatch images)
    {
        using var scope = NewDisposeScope();
        var f = vision_model.Forward(images.PixelValues, images.AspectRatioIds, images.AspectRatioMask); // [B, N, 4, tok, 7680]
        var p = multi_modal_projector.forward(f);
        return p.reshape(f.shape[0], -1, Config.Text.HiddenSize).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Cross-attention inputs for query rows [<paramref name="start"/>, start + <paramref name="length"/>) of token rows
    /// whose <c>&lt;|image|&gt;</c> positions give <paramref name="ranges"/>; <paramref name="visionStates"/> null means
    /// "use the K/V cached at prefill".
    /// </summary>
    public CrossAttentionInputs CrossAttentionFor(IReadOnlyList<IReadOnlyList<(int Start, int End)>> ranges, IReadOnlyList<IReadOnlyList<int>> numTiles,
        Tensor? visionStates, int start, int length)
    {
        int maxImages = numTiles.Count == 0 ? 0 : numTiles.Max(r => r.Count);
        var (mask, row) = CrossAttentionMask.Build(ranges, numTiles, maxImages, Config.Vision.MaxNumTiles, Config.Vision.TokensPerTile,
            start, length, Config.Text.NumHeads / Config.Text.NumKvHeads, DType, Device);
        return new CrossAttentionInputs { VisionStates = visionStates, Mask = mask, RowMask = row, HfCompatible = HfCompatibleCrossAttention };
    }

    /// <summary>
    /// Full forward pass: token ids [B, T] (with <c>&lt;|image|&gt;</c> = <see cref="VisionLanguageConfig.ImageTokenIndex"/>)
    /// and their images (null or no image token anywhere = text-only path) → f32 logits [B, T, vocab].
    /// </summary>
    public Tensor Forward(Tensor ids, ImageBatch? images, ForwardOptions? options = null)
    {
        using var scope = NewDisposeScope();
        options ??= new ForwardOptions();
        var rows = RangesOf(ids);
        if (images is null || rows.All(r => r.Count == 0))
        {
            if (rows.Any(r => r.Count > 0)) throw new ArgumentException("the tokens hold <|image|> but no images were given.");
            return language_model.Forward(ids, options).MoveToOuterDisposeScope();
        }
        if (images.BatchSize != rows.Count) throw new ArgumentException($"{rows.Count} token rows but images for {images.BatchSize}.");
        return ForwardRows(ids, rows, images, EncodeImages(images), options).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <see cref="Forward(Tensor, ImageBatch?, ForwardOptions?)"/> with the images already encoded
    /// (<paramref name="visionStates"/> = <see cref="EncodeImages"/> of <paramref name="images"/>), so that a caller can
    /// also use the cross-attention source itself (e.g. an auxiliary loss on it) without encoding twice.
    /// </summary>
    public Tensor ForwardEncoded(Tensor ids, ImageBatch images, Tensor visionStates, ForwardOptions? options = null)
    {
        using var scope = NewDisposeScope();
        var rows = RangesOf(ids);
        if (rows.All(r => r.Count == 0)) throw new ArgumentException("the tokens hold no <|image|> for the encoded images.");
        if (images.BatchSize != rows.Count) throw new ArgumentException($"{rows.Count} token rows but images for {images.BatchSize}.");
        if (visionStates.shape[0] != rows.Count) throw new ArgumentException($"{rows.Count} token rows but vision states for {visionStates.shape[0]}.");
        return ForwardRows(ids, rows, images, visionStates, options ?? new ForwardOptions()).MoveToOuterDisposeScope();
    }

    Tensor ForwardRows(Tensor ids, List<IReadOnlyList<(int Start, int End)>> rows, ImageBatch images, Tensor states, ForwardOptions options)
    {
        int start = options.Cache?.Length ?? 0;
        var media = CrossAttentionFor(rows, images.NumTiles, states, start, (int)ids.shape[1]);
        var fo = options with { Media = new Dictionary<string, object> { [CrossAttentionInputs.MediaKey] = media } };
        return language_model.Forward(ids, fo);
    }

    List<IReadOnlyList<(int Start, int End)>> RangesOf(Tensor ids)
    {
        var cpu = ids.to(ScalarType.Int64, CPU);
        long b = cpu.shape[0], t = cpu.shape[1];
        var data = cpu.data<long>().ToArray();
        var rows = new List<IReadOnlyList<(int, int)>>();
        for (int r = 0; r < b; r++)
            rows.Add(CrossAttentionMask.ImageRanges(data.Skip((int)(r * t)).Take((int)t).Select(x => (int)x).ToList(), Config.ImageTokenIndex));
        return rows;
    }

    /// <summary>
    /// Generates for a batch of token prompts, each with its own images (a prompt may have none). The images are
    /// encoded once; each cross-attention block computes its K/V at prefill and keeps them in its KV-cache slot.
    /// </summary>
    public IReadOnlyList<GenerationResult> GenerateBatch(IReadOnlyList<IReadOnlyList<int>> prompts, IReadOnlyList<IReadOnlyList<RgbImage>> images,
        GenerationOptions? options = null, Action<int, int>? onToken = null, CancellationToken cancel = default)
    {
        if (prompts.Count != images.Count) throw new ArgumentException($"{prompts.Count} prompts but image lists for {images.Count}.");
        var ranges = ImageRangesOf(prompts, images.Select(r => r.Count).ToList());
        if (images.All(r => r.Count == 0)) return new TextGenerator(language_model, Tokenizer).GenerateBatch(prompts, options, onToken, cancel: cancel);
        using var batch = Preprocessor.Batch(images);
        return GenerateWithImages(prompts, ranges, batch, options, onToken, cancel);
    }

    /// <summary>
    /// Generates for a batch of token prompts whose images are already preprocessed into <paramref name="images"/> (one
    /// row per prompt, e.g. from <see cref="ImagePreprocessor.Pack"/> with a tile budget of your own). The images are
    /// encoded once; each cross-attention block computes its K/V at prefill and keeps them in its KV-cache slot.
    /// </summary>
    public IReadOnlyList<GenerationResult> GenerateBatch(IReadOnlyList<IReadOnlyList<int>> prompts, ImageBatch images,
        GenerationOptions? options = null, Action<int, int>? onToken = null, CancellationToken cancel = default)
    {
        if (prompts.Count != images.BatchSize) throw new ArgumentException($"{prompts.Count} prompts but an image batch of {images.BatchSize} rows.");
        var ranges = ImageRangesOf(prompts, images.NumTiles.Select(r => r.Count).ToList());
        if (images.MaxImages == 0) return new TextGenerator(language_model, Tokenizer).GenerateBatch(prompts, options, onToken, cancel: cancel);
        return GenerateWithImages(prompts, ranges, images, options, onToken, cancel);
    }

    /// <summary>Each prompt's <c>&lt;|image|&gt;</c> ranges in the left-padded batch; throws unless prompt r holds
    /// <paramref name="imageCounts"/>[r] image tokens.</summary>
    List<IReadOnlyList<(int Start, int End)>> ImageRangesOf(IReadOnlyList<IReadOnlyList<int>> prompts, IReadOnlyList<int> imageCounts)
    {
        int maxLen = prompts.Count == 0 ? 0 : prompts.Max(p => p.Count);
        var ranges = new List<IReadOnlyList<(int Start, int End)>>();
        for (int r = 0; r < prompts.Count; r++)
        {
            int pad = maxLen - prompts[r].Count;
            var rr = CrossAttentionMask.ImageRanges(prompts[r], Config.ImageTokenIndex)
                .Select(x => (x.Start + pad, x.End == CrossAttentionMask.Open ? x.End : x.End + pad)).ToList();
            if (rr.Count != imageCounts[r])
                throw new ArgumentException($"prompt {r} holds {rr.Count} <|image|> tokens but {imageCounts[r]} images were given.");
            ranges.Add(rr);
        }
        return ranges;
    }

    IReadOnlyList<GenerationResult> GenerateWithImages(IReadOnlyList<IReadOnlyList<int>> prompts, List<IReadOnlyList<(int Start, int End)>> ranges,
        ImageBatch images, GenerationOptions? options, Action<int, int>? onToken, CancellationToken cancel)
    {
        var generator = new TextGenerator(language_model, Tokenizer);
        using var states = WithNoGrad(() => EncodeImages(images));
        // Beam search runs each prompt as NumBeams consecutive rows.
        int w = Math.Max(1, options?.NumBeams ?? 1);
        var rowRanges = w == 1 ? ranges : ranges.SelectMany(r => Enumerable.Repeat(r, w)).ToList();
        var rowTiles = w == 1 ? images.NumTiles : images.NumTiles.SelectMany(r => Enumerable.Repeat(r, w)).ToList();
        using var rowStates = w == 1 ? null : states.repeat_interleave(w, 0);
        return generator.GenerateBatch(prompts, options, onToken, (cache, fo) =>
        {
            int start = cache.Length, length = (int)fo.Positions!.shape[1];
            var media = CrossAttentionFor(rowRanges, rowTiles, start == 0 ? rowStates ?? states : null, start, length);
            return fo with { Media = new Dictionary<string, object> { [CrossAttentionInputs.MediaKey] = media } };
        }, cancel: cancel);
    }

    static Tensor WithNoGrad(Func<Tensor> f)
    {
        using var _ = torch.no_grad();
        return f();
    }

    /// <summary>
    /// Generates a reply to <paramref name="prompt"/> about <paramref name="images"/> (in <see cref="PromptFormat"/>: a reply
    /// for Instruct, a continuation of the prompt for Completion).
    /// </summary>
    public GenerationResult Generate(IReadOnlyList<RgbImage> images, string prompt, GenerationOptions? options = null, Action<int>? onToken = null)
    {
        var ids = VisionPrompt.Encode(PromptFormat, Tokenizer, prompt, images.Count, Config.ImageTokenIndex);
        return GenerateBatch(new[] { (IReadOnlyList<int>)ids }, new[] { images }, options, onToken == null ? null : (_, id) => onToken(id))[0];
    }

    /// <summary>Generates a reply to <paramref name="prompt"/> about the image files <paramref name="imagePaths"/>.</summary>
    public GenerationResult Generate(IReadOnlyList<string> imagePaths, string prompt, GenerationOptions? options = null, Action<int>? onToken = null) =>
        Generate(imagePaths.Select(p => ImageLoader.Load(p, Alpha)).ToList(), prompt, options, onToken);

    /// <summary>
    /// Describes one image file; returns the generated text. <paramref name="prompt"/> defaults to "Describe this image in
    /// two sentences." for Instruct models and to nothing (the caption continues the image) for Completion models.
    /// </summary>
    public string Caption(string imagePath, string? prompt = null, GenerationOptions? options = null) =>
        Generate(new[] { imagePath }, prompt ?? (PromptFormat == VisionPromptFormat.Completion ? "" : "Describe this image in two sentences."), options).Text.Trim();

    /// <summary>
    /// Loads a Hugging Face <c>MllamaForConditionalGeneration</c> folder (<c>config.json</c> + safetensors, sharded or not,
    /// any stored dtype), converting to <paramref name="dtype"/> on <paramref name="device"/> tensor by tensor. Key spellings
    /// of older and newer transformers are both accepted; loading is strict (every key named on mismatch).
    /// </summary>
    public static VisionLanguageModel FromPretrained(string directory, Device? device = null, ScalarType dtype = ScalarType.Float32, Action<int, int>? progress = null) =>
        FromPretrained(directory, new LoadOptions { Device = device, DType = dtype, Progress = progress });

    /// <summary>
    /// Loads a folder with <paramref name="options"/>; <see cref="LoadOptions.Quantize"/> stores the language model's
    /// linear layers (self- and cross-attention, MLPs, and by default the embedding and head) as q8 while reading. The
    /// vision encoder keeps <see cref="LoadOptions.DType"/>.
    /// </summary>
    public static VisionLanguageModel FromPretrained(string directory, LoadOptions options)
    {
        using var quantization = QuantizationSettings.Use(options.QuantizationFor(directory));
        return Load(directory, options.Device, options.DType, options.Progress);
    }

    static VisionLanguageModel Load(string directory, Device? device, ScalarType dtype, Action<int, int>? progress)
    {
        string cfgPath = Path.Combine(directory, "config.json");
        if (!File.Exists(cfgPath)) throw new CheckpointFormatException($"{directory}: config.json (Hugging Face Mllama layout) not found.");
        var cfg = VisionLanguageConfigJson.Read(cfgPath);
        var model = Create(cfg, device, dtype);
        try
        {
            using var reader = CheckpointReader.Open(directory);
            bool newer = reader.Keys.Any(k => k.StartsWith("model.vision_model.", StringComparison.Ordinal) || k.StartsWith("model.language_model.", StringComparison.Ordinal));
            StateLoader.Load(model, reader, keyFor: newer ? NewerKey : null, progress: progress,
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

    /// <summary>Key of a parameter in the newer transformers spelling (<c>model.vision_model.*</c>, <c>model.language_model.*</c>, <c>lm_head.weight</c>).</summary>
    public static string NewerKey(string name)
    {
        if (name.StartsWith("language_model.model.", StringComparison.Ordinal)) return "model.language_model." + name["language_model.model.".Length..];
        if (name.StartsWith("language_model.lm_head.", StringComparison.Ordinal)) return name["language_model.".Length..];
        return "model." + name;
    }

    /// <summary>
    /// Saves <c>config.json</c> and the weights in the Hugging Face layout (<c>model.safetensors</c>, or shards of at most
    /// <paramref name="maxShardBytes"/> with <c>model.safetensors.index.json</c>), optionally converting to <paramref name="dtype"/>.
    /// </summary>
    public void Save(string directory, ScalarType? dtype = null, long maxShardBytes = 5L << 30)
    {
        Directory.CreateDirectory(directory);
        var tensors = QuantizedLayers.TensorsToWrite(this, n => n, (_, p) => dtype ?? p.dtype);
        SafeTensorsWriter.WriteSharded(directory, tensors, maxShardBytes);
        string tdt = (dtype ?? DType) switch { ScalarType.BFloat16 => "bfloat16", ScalarType.Float16 => "float16", _ => "float32" };
        var cfg = VisionLanguageConfigJson.ToHuggingFace(Config, tdt);
        if (language_model.Quantization is { } q && QuantizedLayers.Scales(this).Count > 0) cfg["quantization_config"] = q.ToJson();
        AtomicFile.WriteAllText(Path.Combine(directory, "config.json"), cfg.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }
}

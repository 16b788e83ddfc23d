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
public sealed class VisionLanguageModel : nn.Module, IComponentModel
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
    /// <see cref="Caption"/>): Instruct for instruction-tuned models (the default), Completion for base models. It is
    /// stored with the model: <see cref="Save"/> writes it to <c>generation_config.json</c> (<c>prompt_format</c>) and
    /// <see cref="FromPretrained(string, LoadOptions)"/> reads it back (<see cref="VisionPrompt.FormatOf"/>).
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

    /// <summary>
    /// The model's components (what training chooses to train or freeze), named after their HF modules:
    /// <c>vision_model</c> (image encoder), <c>multi_modal_projector</c>, <c>cross_attention_layers</c> (the gated
    /// cross-attention blocks of the decoder), <c>language_model</c> (the rest of the decoder: embedding, self-attention
    /// layers, final norm and head; the LLM that Llama 3 keeps frozen while the image adapter trains) and
    /// <c>embed_tokens</c> (the embedding alone).
    /// </summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> Components => _components ??= BuildComponents();
    IReadOnlyDictionary<string, IReadOnlyList<string>>? _components;

    Dictionary<string, IReadOnlyList<string>> BuildComponents()
    {
        const string layers = "language_model.model.layers.";
        var cross = Config.CrossAttentionLayers.OrderBy(i => i).Select(i => layers + i).ToArray();
        var text = new List<string> { "language_model.model.embed_tokens" };
        text.AddRange(Enumerable.Range(0, Config.Text.NumLayers).Where(i => !Config.CrossAttentionLayers.Contains(i)).Select(i => layers + i));
        text.Add("language_model.model.norm");
        if (language_model.lm_head is not null) text.Add("language_model.lm_head");
        return new Dictionary<string, IReadOnlyList<string>>
        {
            ["vision_model"] = new[] { "vision_model" },
            ["multi_modal_projector"] = new[] { "multi_modal_projector" },
            ["cross_attention_layers"] = cross,
            ["language_model"] = text,
            ["embed_tokens"] = new[] { "language_model.model.embed_tokens" },
        };
    }

    /// <summary>
    /// Builds an image-text model around the text decoder <paramref name="text"/> (Llama 3 §7.2: cross-attention layers
    /// are added to the language model, whose weights are kept). The new stack has <paramref name="text"/>'s layers as
    /// its self-attention blocks, in order, and gated cross-attention blocks at <paramref name="crossAttentionLayers"/>
    /// (indices in the new stack, HF <c>text_config.cross_attention_layers</c>; see
    /// <see cref="VisionLanguageConfig.FusionSchedule"/>). Everything new (image encoder of <paramref name="vision"/>,
    /// projector, cross-attention blocks) is initialised from <paramref name="seed"/> with zero gates, so the model first
    /// computes exactly what the text model does. The embedding gains <see cref="VisionLanguageConfig.ExtraEmbeddingRows"/>
    /// rows, the first of which is <c>&lt;|image|&gt;</c> (id = the text vocabulary size). Weights are copied, on the text
    /// model's device and dtype; <paramref name="text"/> is left as it was.
    /// </summary>
    public static VisionLanguageModel FromTextModel(LlamaForCausalLM text, VisionConfig vision, IReadOnlyList<int> crossAttentionLayers,
        long seed = 0, double std = 0.02)
    {
        var tc = text.Config;
        int total = tc.NumLayers + crossAttentionLayers.Count;
        var cfg = new VisionLanguageConfig
        {
            Text = tc with { NumLayers = total, ExtraEmbeddingRows = Math.Max(tc.ExtraEmbeddingRows, VisionLanguageConfig.ExtraEmbeddingRows) },
            Vision = vision, CrossAttentionLayers = crossAttentionLayers.ToArray(), ImageTokenIndex = tc.VocabSize,
        };
        var model = Create(cfg, text.Device, text.DType).InitializeWeights(seed, std);
        try
        {
            var src = text.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            using var noGrad = torch.no_grad();
            foreach (var (name, p) in model.language_model.named_parameters())
            {
                if (model.TextKeyOf(name) is not { } key) continue;
                if (!src.TryGetValue(key, out var s)) throw new CheckpointFormatException($"the text model has no '{key}' for the image-text model's '{name}'.");
                if (s.shape.SequenceEqual(p.shape)) p.copy_(s);
                else if (s.dim() == 2 && p.dim() == 2 && s.shape[1] == p.shape[1] && s.shape[0] < p.shape[0]) p.narrow(0, 0, s.shape[0]).copy_(s);
                else throw new CheckpointFormatException($"the text model's '{key}' has shape [{string.Join(", ", s.shape)}], the image-text model needs [{string.Join(", ", p.shape)}].");
            }
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The text-model key (<c>LlamaForCausalLM</c> naming: <c>model.embed_tokens.weight</c>, <c>model.layers.N.*</c>,
    /// <c>model.norm.weight</c>, <c>lm_head.weight</c>) of the language-model parameter <paramref name="name"/> (relative
    /// to <see cref="language_model"/>): self-attention layer indices are renumbered without the cross-attention blocks.
    /// Null for a parameter of a cross-attention block (it has no text-model counterpart).
    /// </summary>
    public string? TextKeyOf(string name)
    {
        const string pre = "model.layers.";
        if (!name.StartsWith(pre, StringComparison.Ordinal)) return name;
        int dot = name.IndexOf('.', pre.Length);
        int k = int.Parse(name.AsSpan(pre.Length, dot - pre.Length));
        if (Config.CrossAttentionLayers.Contains(k)) return null;
        int index = Enumerable.Range(0, k).Count(i => !Config.CrossAttentionLayers.Contains(i));
        return $"{pre}{index}{name[dot..]}";
    }

    /// <summary>
    /// Replaces the language model with the text decoder in the Hugging Face Llama folder <paramref name="directory"/>
    /// (Llama 3 §7.5: the pre-trained language model of an image model is hot-swapped for an instruction-tuned one): the
    /// embedding rows of the text vocabulary, every self-attention layer, the final norm and the output head are copied;
    /// the cross-attention blocks, the image encoder, the projector and the embedding rows past the text vocabulary
    /// (<c>&lt;|image|&gt;</c>) keep their weights. Since the cross-attention blocks are skipped for text without images,
    /// text-only prompts then compute exactly what the text model computes. The folder may also be a reward model
    /// (<c>LlamaForSequenceClassification</c>: <c>model.*</c> and <c>score.weight</c>, no output head); the head then
    /// stays as it was. Throws <see cref="CheckpointFormatException"/> naming the setting or tensor that differs (shapes,
    /// vocabulary, self-attention layer count, RoPE and norm settings, tied head).
    /// </summary>
    public void LoadLanguageModel(string directory)
    {
        string path = Path.Combine(directory, "config.json");
        if (!File.Exists(path)) throw new CheckpointFormatException($"{directory}: config.json not found (expected a Hugging Face Llama text model folder, e.g. the sft recipe's output).");
        var o = LlamaConfigJson.ReadObject(path);
        if (o.ContainsKey("vision_config")) throw new CheckpointFormatException($"{path}: an image-text model; name a text model folder (the sft or reward-model recipe's output).");
        bool reward = o["architectures"]?.ToJsonString().Contains("ForSequenceClassification", StringComparison.Ordinal) == true;
        var src = LlamaConfigJson.FromHuggingFace(o, path, new HashSet<string> { "num_labels", "architectures", "model_type", "torch_dtype", "transformers_version" });
        var dst = Config.Text;
        int selfLayers = dst.NumLayers - Config.CrossAttentionLayers.Count;
        string? mismatch =
            src.HiddenSize != dst.HiddenSize ? $"hidden_size {src.HiddenSize} (image model: {dst.HiddenSize})" :
            src.NumLayers != selfLayers ? $"num_hidden_layers {src.NumLayers} (image model: {selfLayers} self-attention layers)" :
            src.NumHeads != dst.NumHeads ? $"num_attention_heads {src.NumHeads} (image model: {dst.NumHeads})" :
            src.NumKvHeads != dst.NumKvHeads ? $"num_key_value_heads {src.NumKvHeads} (image model: {dst.NumKvHeads})" :
            src.IntermediateSize != dst.IntermediateSize ? $"intermediate_size {src.IntermediateSize} (image model: {dst.IntermediateSize})" :
            src.VocabSize != dst.VocabSize ? $"vocab_size {src.VocabSize} (image model: {dst.VocabSize}; the same tokenizer is needed)" :
            src.RopeTheta != dst.RopeTheta ? $"rope_theta {src.RopeTheta} (image model: {dst.RopeTheta})" :
            !Equals(src.RopeScaling, dst.RopeScaling) ? "rope_scaling (differs from the image model's)" :
            src.RmsNormEps != dst.RmsNormEps ? $"rms_norm_eps {src.RmsNormEps} (image model: {dst.RmsNormEps})" :
            !reward && src.TieWordEmbeddings != dst.TieWordEmbeddings ? $"tie_word_embeddings {src.TieWordEmbeddings.ToString().ToLowerInvariant()} (image model: {dst.TieWordEmbeddings.ToString().ToLowerInvariant()})" : null;
        if (mismatch is not null) throw new CheckpointFormatException($"{path}: the text model does not fit the image model's language model: {mismatch}.");
        using var reader = CheckpointReader.Open(directory);
        var writes = new List<(Tensor Target, string Key)>();
        foreach (var (name, p) in language_model.named_parameters())
        {
            if (TextKeyOf(name) is not { } key) continue;
            if (!reader.Keys.Contains(key))
            {
                if (reward && key == "lm_head.weight") continue;
                throw new CheckpointFormatException($"{directory}: tensor '{key}' (for the image model's 'language_model.{name}') is missing.");
            }
            var shape = reader.Info(key).Shape.ToArray();
            bool embedding = key == "model.embed_tokens.weight";
            bool fits = embedding ? shape.Length == 2 && shape[0] >= dst.VocabSize && shape[1] == p.shape[1] : shape.SequenceEqual(p.shape);
            if (!fits)
                throw new CheckpointFormatException($"{directory}: tensor '{key}' has shape [{string.Join(", ", shape)}], the image model's 'language_model.{name}' needs " +
                    $"[{string.Join(", ", embedding ? new[] { dst.VocabSize, p.shape[1] } : p.shape)}].");
            writes.Add((p, key));
        }
        using var noGrad = torch.no_grad();
        int vocab = dst.VocabSize;
        foreach (var (p, key) in writes)
        {
            using var t = reader.Read(key);
            if (key == "model.embed_tokens.weight") p.narrow(0, 0, vocab).copy_(t.narrow(0, 0, vocab));
            else p.copy_(t);
        }
    }

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

    Tensor ForwardRows(Tensor ids, List<IReadOnlyList<(int Start, int End)>> rows, ImageBatch images, Tensor states, ForwardOptions options, bool hidden = false)
    {
        int start = options.Cache?.Length ?? 0;
        var media = CrossAttentionFor(rows, images.NumTiles, states, start, (int)ids.shape[1]);
        var fo = options with { Media = new Dictionary<string, object> { [CrossAttentionInputs.MediaKey] = media } };
        return hidden ? language_model.Hidden(language_model.Embed(ids.to(ScalarType.Int64, language_model.Device)), fo) : language_model.Forward(ids, fo);
    }

    /// <summary>
    /// The final-normed hidden states [B, T, D] of <see cref="Forward(Tensor, ImageBatch?, ForwardOptions?)"/> (before the
    /// output head), e.g. for a scalar reward head on the last token.
    /// </summary>
    public Tensor HiddenStates(Tensor ids, ImageBatch? images, ForwardOptions? options = null)
    {
        using var scope = NewDisposeScope();
        options ??= new ForwardOptions();
        var rows = RangesOf(ids);
        if (images is null || rows.All(r => r.Count == 0))
        {
            if (rows.Any(r => r.Count > 0)) throw new ArgumentException("the tokens hold <|image|> but no images were given.");
            return language_model.Hidden(language_model.Embed(ids.to(ScalarType.Int64, language_model.Device)), options).MoveToOuterDisposeScope();
        }
        if (images.BatchSize != rows.Count) throw new ArgumentException($"{rows.Count} token rows but images for {images.BatchSize}.");
        return ForwardRows(ids, rows, images, EncodeImages(images), options, hidden: true).MoveToOuterDisposeScope();
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
        long encodeStart = System.Diagnostics.Stopwatch.GetTimestamp();
        using var states = WithNoGrad(() => EncodeImages(images));
        double encoderSeconds = System.Diagnostics.Stopwatch.GetElapsedTime(encodeStart).TotalSeconds;
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
        }, cancel: cancel).Select(r => r with { EncoderSeconds = encoderSeconds }).ToList();
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
        // The tokenizer (a 128k-entry vocabulary) is read on another core while the weights are placed.
        var tokenizer = Task.Run(() => Llama3Tokenizer.FromModelDirectory(directory) ?? Llama3Tokenizer.Default);
        var model = Create(cfg, device, dtype);
        try
        {
            using var reader = CheckpointReader.Open(directory);
            bool newer = reader.Keys.Any(k => k.StartsWith("model.vision_model.", StringComparison.Ordinal) || k.StartsWith("model.language_model.", StringComparison.Ordinal));
            StateLoader.Load(model, reader, keyFor: newer ? NewerKey : null, progress: progress,
                ignoreUnexpected: k => k.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal), memoryMap: true);
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

    /// <summary>Key of a parameter in the newer transformers spelling (<c>model.vision_model.*</c>, <c>model.language_model.*</c>, <c>lm_head.weight</c>).</summary>
    public static string NewerKey(string name)
    {
        if (name.StartsWith("language_model.model.", StringComparison.Ordinal)) return "model.language_model." + name["language_model.model.".Length..];
        if (name.StartsWith("language_model.lm_head.", StringComparison.Ordinal)) return name["language_model.".Length..];
        return "model." + name;
    }

    /// <summary>
    /// Replaces this model's weights with those of the Hugging Face Mllama folder <paramref name="directory"/> (either
    /// transformers key spelling), strictly: every key must be there with its shape, and no other key.
    /// </summary>
    public void LoadWeights(string directory, Action<int, int>? progress = null)
    {
        using var reader = CheckpointReader.Open(directory);
        bool newer = reader.Keys.Any(k => k.StartsWith("model.vision_model.", StringComparison.Ordinal) || k.StartsWith("model.language_model.", StringComparison.Ordinal));
        StateLoader.Load(this, reader, keyFor: newer ? NewerKey : null, progress: progress,
            ignoreUnexpected: k => k.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal));
    }

    /// <summary>
    /// Saves <c>config.json</c>, <c>generation_config.json</c> (with <see cref="PromptFormat"/>) and the weights in the
    /// Hugging Face layout (<c>model.safetensors</c>, or shards of at most <paramref name="maxShardBytes"/> with
    /// <c>model.safetensors.index.json</c>), optionally converting to <paramref name="dtype"/>.
    /// </summary>
    public void Save(string directory, ScalarType? dtype = null, long maxShardBytes = 5L << 30) => Write(directory, dtype, maxShardBytes, null);

    /// <summary>
    /// Writes a random-weight checkpoint with the weights <c>Create(config).InitializeWeights(seed, std)</c> would hold,
    /// stored as <paramref name="dtype"/>, without ever holding the model: it is built on the meta device and each weight
    /// is drawn, converted and written on its own (Llama 3.2 11B Vision in bf16 needs about one embedding table of memory).
    /// </summary>
    public static void SaveRandom(VisionLanguageConfig config, string directory, long seed, ScalarType dtype = ScalarType.Float32, double std = 0.02,
        long maxShardBytes = 5L << 30)
    {
        using var m = Create(config, torch.device(DeviceType.META), dtype);
        var values = new WeightInit.Stream(m, seed, std);
        m.Write(directory, dtype, maxShardBytes, values);
    }

    void Write(string directory, ScalarType? dtype, long maxShardBytes, WeightInit.Stream? values)
    {
        Directory.CreateDirectory(directory);
        var tensors = values is null
            ? QuantizedLayers.TensorsToWrite(this, n => n, (_, p) => dtype ?? p.dtype)
            : named_parameters().Select(np => new TensorToWrite(np.name, np.parameter.shape, dtype ?? np.parameter.dtype, () => values.Next(np.name), true)).ToList();
        SafeTensorsWriter.WriteSharded(directory, tensors, maxShardBytes);
        SaveConfig(directory, dtype);
    }

    /// <summary>
    /// Writes <c>config.json</c> (its <c>torch_dtype</c> from <paramref name="dtype"/>, default the weight dtype) and
    /// records <see cref="PromptFormat"/> in <c>generation_config.json</c> (see <see cref="VisionPrompt.WriteFormat"/>).
    /// </summary>
    public void SaveConfig(string directory, ScalarType? dtype = null)
    {
        Directory.CreateDirectory(directory);
        string tdt = (dtype ?? DType) switch { ScalarType.BFloat16 => "bfloat16", ScalarType.Float16 => "float16", _ => "float32" };
        var cfg = VisionLanguageConfigJson.ToHuggingFace(Config, tdt);
        if (language_model.Quantization is { } q && QuantizedLayers.Scales(this).Count > 0) cfg["quantization_config"] = q.ToJson();
        AtomicFile.WriteAllText(Path.Combine(directory, "config.json"), cfg.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        VisionPrompt.WriteFormat(directory, PromptFormat, Config.Text);
    }
}

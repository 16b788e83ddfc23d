using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// Image pretraining of Llama 3.2 Vision (Llama 3 paper §7.4): the text decoder is frozen; the image encoder and the
/// adapters (gated cross-attention blocks + projector) train on image+caption manifests with next-token loss on the caption
/// tokens only, in the completion format <c>&lt;|image|&gt;&lt;|begin_of_text|&gt;caption&lt;|end_of_text|&gt;</c>.
/// <c>model.init_from</c> is either a Llama 3.2 Vision folder (continue) or a text-only decoder folder (the vision model is
/// built around it: self-attention layers copied, cross-attention blocks added per <see cref="VisionLanguageConfig.FusionSchedule"/>,
/// image encoder/adapters fresh with zero gates). Stage 1 and stage 2 differ only in defaults (<see cref="VisionStage1Recipe"/>,
/// <see cref="VisionStage2Recipe"/>); images are fitted to at most <c>vision.max_tiles</c> tiles of the model's tile size.
/// </summary>
public abstract class VisionRecipe : Recipe
{
    VisionLanguageModel? _model;
    ImagePreprocessor? _pre;
    readonly List<(IVisionAuxiliaryLoss Loss, double Weight)> _auxiliary = new();
    VisionLanguageModel? _anchor;

    /// <summary>The tokenizer of the run.</summary>
    public ITrainingTokenizer Tokenizer { get; private set; } = ByteTokenizer.Instance;
    /// <summary>Device of the run.</summary>
    protected Device Device { get; private set; } = CPU;
    /// <summary>The model being trained.</summary>
    public VisionLanguageModel Vlm => _model ?? throw new InvalidOperationException("call Setup first.");
    /// <inheritdoc/>
    public override nn.Module Model => Vlm;
    /// <inheritdoc/>
    public override IReadOnlyList<string> DefaultTrainable => new[] { "vision_model", "multi_modal_projector", "cross_attention_layers" };
    /// <inheritdoc/>
    public override IReadOnlyList<(string Name, Tensor Param)> AuxiliaryParameters => _auxiliary.SelectMany(a => a.Loss.Parameters).ToList();
    /// <summary>The auxiliary losses of <c>vision.auxiliary_losses</c> in force, with their weights (set by <see cref="Setup"/>).</summary>
    public IReadOnlyList<(IVisionAuxiliaryLoss Loss, double Weight)> AuxiliaryLosses => _auxiliary;
    /// <summary>The frozen reference model the anchor loss compares with (<c>vision.anchor_loss_weight</c> &gt; 0); null otherwise.</summary>
    internal VisionLanguageModel? AnchorModel => _anchor;


    /// <summary>Defaults shared by both stages at paper scale (Llama 3 paper §7.4: global batch 16 384, cosine, wd 0.01, ≤ 4 tiles).</summary>
    protected TrainConfig PaperConfig(double lr, double minLr, long steps, long warmup, int maxTiles) => new()
    {
        Command = $"mm-train {Name} --config configs/training/{Name}.json --out runs/{Name}",
        Recipe = Name,
        Tokenizer = "llama3",
        Model = new ModelSection { Preset = "llama3.1-8b", InitFrom = "checkpoints/text" },
        Data = new DataSection { Train = "images.jsonl", SeqLen = 512 },
        Optim = new OptimSection { Lr = lr, MinLr = minLr, WarmupSteps = warmup, TotalSteps = steps, Schedule = "cosine", WeightDecay = 0.01 },
        Batch = new BatchSection { Unit = "samples", Global = 16384, Micro = 8 },
        Train = new LoopSection { SaveEvery = 1000 },
        Vision = new VisionSection { Preset = "llama3.2-11b-vision", MaxTiles = maxTiles },
    };

    /// <inheritdoc/>
    public override void Setup(TrainConfig config, Device device, ScalarType dtype)
    {
        Config = config; Device = device;
        var vision = config.VisionSettings;
        Tokenizer = Llama3TrainingTokenizer.Resolve(config.Tokenizer);
        _model = BuildModel(config, device, dtype);
        if (vision.LanguageModelFrom is { Length: > 0 } lmFrom) SwapLanguageModel(_model, lmFrom);
        _pre = Preprocessor(_model.Config.Vision, vision.MaxTiles);
        DisposeExtras();
        if (vision.AnchorLossWeight > 0)
        {
            _anchor = LoadAnchor(config, _model.Config, device, dtype);
            foreach (var q in _anchor.parameters()) q.requires_grad_(false);
            _anchor.eval();
        }
        // Set up in config order after the anchor: a loss that draws fresh weights from libtorch's generator (which the
        // trainer has just seeded) gets the same ones for the same seed and config.
        foreach (var spec in vision.AuxiliaryLosses.Where(a => a.Weight > 0))
        {
            var loss = AuxiliaryLossRegistry.Create(spec.Name);
            _auxiliary.Add((loss, spec.Weight));
            loss.Setup(new VisionAuxiliaryContext(_model, Tokenizer, device, dtype));
        }
    }

    void DisposeExtras()
    {
        foreach (var (loss, _) in _auxiliary) loss.Dispose();
        _auxiliary.Clear();
        _anchor?.Dispose(); _anchor = null;
    }

    // The frozen model of the anchor loss: vision.anchor_from, else model.init_from; its source must have the run's shape.
    static VisionLanguageModel LoadAnchor(TrainConfig config, VisionLanguageConfig run, Device device, ScalarType dtype)
    {
        double w = config.VisionSettings.AnchorLossWeight;
        string? dir = config.VisionSettings.AnchorFrom;
        if (dir is not null)
        {
            if (!ModelConstruction.IsVisionFolder(dir))
                throw new ConfigException($"vision.anchor_from = '{dir}' is not a vision model folder (no config.json with a vision_config).");
        }
        else if (string.IsNullOrEmpty(config.Model.InitFrom) || !ModelConstruction.IsVisionFolder(config.Model.InitFrom))
            throw new ConfigException($"vision.anchor_loss_weight = {w} needs model.init_from (or vision.anchor_from) to name a vision model folder (got model.init_from = '{config.Model.InitFrom}').");
        string key = dir is not null ? "vision.anchor_from" : "model.init_from";
        dir ??= config.Model.InitFrom!;
        var anchor = VisionLanguageModel.FromPretrained(dir, device, dtype);
        var (a, r) = (anchor.Config, run);
        string? mismatch =
            a.Vision.ImageSize != r.Vision.ImageSize ? $"vision_config.image_size {a.Vision.ImageSize} (run: {r.Vision.ImageSize})" :
            a.Vision.PatchSize != r.Vision.PatchSize ? $"vision_config.patch_size {a.Vision.PatchSize} (run: {r.Vision.PatchSize})" :
            a.Vision.MaxNumTiles != r.Vision.MaxNumTiles ? $"vision_config.max_num_tiles {a.Vision.MaxNumTiles} (run: {r.Vision.MaxNumTiles})" :
            a.Text.HiddenSize != r.Text.HiddenSize ? $"text_config.hidden_size {a.Text.HiddenSize} (run: {r.Text.HiddenSize})" : null;
        if (mismatch is not null)
        {
            anchor.Dispose();
            throw new ConfigException($"{key} = '{dir}': its cross-attention source differs from the run's model: {mismatch}.");
        }
        return anchor;
    }

    /// <summary>
    /// Replaces <paramref name="model"/>'s language model with the text model in <paramref name="directory"/>
    /// (<c>vision.language_model_from</c>, see <see cref="VisionLanguageModel.LoadLanguageModel"/>); a folder that does
    /// not fit is a <see cref="ConfigException"/> naming the key and what differs.
    /// </summary>
    public static void SwapLanguageModel(VisionLanguageModel model, string directory)
    {
        try { model.LoadLanguageModel(directory); }
        catch (CheckpointFormatException e) { throw new ConfigException($"vision.language_model_from = '{directory}': {e.Message}", e); }
        catch (ConfigException e) { throw new ConfigException($"vision.language_model_from = '{directory}': {e.Message}", e); }
    }

    /// <summary>The preprocessor of the run: images fitted to at most <c>vision.max_tiles</c> tiles (set by <see cref="Setup"/>).</summary>
    protected ImagePreprocessor TilePreprocessor => _pre ?? throw new InvalidOperationException("call Setup first.");

    /// <summary>Refuses the captioning stages' extra losses (anchor, auxiliary) in a post-training recipe.</summary>
    protected void RejectCaptioningLosses(TrainConfig config)
    {
        var v = config.VisionSettings;
        if (v.AnchorLossWeight > 0 || v.AuxiliaryLosses.Any(a => a.Weight > 0))
            throw new ConfigException($"{Name}: vision.anchor_loss_weight and vision.auxiliary_losses belong to the captioning stages (vision-stage1/2).");
    }

    /// <summary>The prompt format written with the model (<c>generation_config.json</c>): Completion for the pretraining stages.</summary>
    protected virtual VisionPromptFormat SavedPromptFormat => VisionPromptFormat.Completion;

    /// <summary>A preprocessor fitting images to at most <paramref name="maxTiles"/> tiles, packing to the model's tile count.</summary>
    public static ImagePreprocessor Preprocessor(VisionConfig vision, int maxTiles) =>
        new(vision.ImageSize, vision.MaxNumTiles, vision.SupportedAspectRatios.Where(r => r.H * r.W <= maxTiles).ToList());

    /// <summary>The image model this recipe trains (or wraps): <see cref="Build"/> unless a recipe reads other folders too.</summary>
    protected virtual VisionLanguageModel BuildModel(TrainConfig config, Device device, ScalarType dtype) => Build(config, Tokenizer, device, dtype);

    /// <summary>
    /// The vision model of <paramref name="config"/>: a vision folder in <c>model.init_from</c> loads as is; a text folder
    /// is wrapped (see the class remarks); otherwise <c>vision.preset</c> (default <c>tiny-vision</c>) with the tokenizer's
    /// vocabulary and <c>model.*</c> overrides, freshly initialised from the seed.
    /// </summary>
    public static VisionLanguageModel Build(TrainConfig config, ITrainingTokenizer tok, Device device, ScalarType dtype)
    {
        var m = config.Model;
        if (!string.IsNullOrEmpty(m.InitFrom))
        {
            if (ModelConstruction.IsVisionFolder(m.InitFrom)) return VisionLanguageModel.FromPretrained(m.InitFrom, device, dtype);
            return FromTextModel(m.InitFrom, config, device, dtype);
        }
        var cfg = ModelConstruction.Vision(config, VisionPresets.Get(config.VisionSettings.Preset ?? "tiny-vision"), tok);
        return VisionLanguageModel.Create(cfg, device, dtype).InitializeWeights(config.Seed, m.InitStd);
    }

    /// <summary>
    /// Builds a vision model around the text decoder in <paramref name="directory"/>: its layers become the self-attention
    /// blocks, <c>vision.num_cross_attention_layers</c> gated cross-attention blocks are interleaved (zero gates: the model
    /// first behaves exactly like the text model), and the image encoder and projector come from <c>vision.preset</c>.
    /// </summary>
    public static VisionLanguageModel FromTextModel(string directory, TrainConfig config, Device device, ScalarType dtype)
    {
        using var text = LlamaForCausalLM.FromPretrained(directory, device, dtype);
        var preset = VisionPresets.Get(config.VisionSettings.Preset ?? "tiny-vision");
        int self = text.Config.NumLayers;
        int cross = Math.Min(config.VisionSettings.NumCrossAttentionLayers ?? preset.CrossAttentionLayers.Count, self);
        try { return VisionLanguageModel.FromTextModel(text, preset.Vision, VisionLanguageConfig.FusionSchedule(self, cross), config.Seed, config.Model.InitStd); }
        catch (CheckpointFormatException e) { throw new CheckpointFormatException($"{directory}: {e.Message}", e); }
    }

    /// <summary>One prepared record: ids, labels, the preprocessed image, the auxiliary losses' targets (in
    /// <see cref="AuxiliaryLosses"/> order) and whether the anchor loss holds it.</summary>
    internal sealed record Item(long[] Ids, long[] Labels, ProcessedImage Image, object?[] Targets, bool Anchored);

    Item Prepare(ImageCaptionRecord r, bool eval)
    {
        var (ids, labels) = MediaTokens.Caption(Tokenizer, Vlm.Config.ImageTokenIndex, r.Caption, Config.Data.SeqLen);
        var image = RecordMedia.Image(r);
        var p = ProcessImage(_pre!, Vlm.Preprocessor, image);
        var targets = eval ? new object?[_auxiliary.Count] : _auxiliary.Select(a => a.Loss.Targets(r, image, p)).ToArray();
        bool anchored = !eval && _anchor is not null && r.Anchor;
        return new Item(ids, labels, p, targets, anchored);
    }

    /// <summary>Preprocesses with <paramref name="pre"/> and numbers the aspect ratio as the model's preprocessor does.</summary>
    public static ProcessedImage ProcessImage(ImagePreprocessor pre, ImagePreprocessor model, RgbImage image)
    {
        var p = pre.Process(image);
        return new ProcessedImage { Tiles = p.Tiles, Grid = p.Grid, AspectRatioId = model.AspectRatioId(p.Grid), Resized = p.Resized };
    }

    /// <inheritdoc/>
    public override IBatchSource OpenData(bool eval, DataCursor start)
    {
        return OpenSamples<ImageCaptionRecord, Item>(eval, start, (p, skip) => (JsonlManifest.ReadImageCaptions(p, skip, out int n), n),
            ShardRecords.ImageCaption, (r, _, _) => Prepare(r, eval), Collate);
    }

    MicroBatch Collate(List<Item> items, int seqLen, DataCursor end)
    {
        var ids = Padding.Rows(items.Select(i => i.Ids).ToList(), Tokenizer.PadId, seqLen, out int len);
        var labels = Padding.Rows(items.Select(i => i.Labels).ToList(), -100, seqLen, out _);
        using var batch = Vlm.Preprocessor.Pack(items.Select(i => (IReadOnlyList<ProcessedImage>)new[] { i.Image }).ToList());
        foreach (var i in items) i.Image.Dispose();
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
        for (int k = 0; k < _auxiliary.Count; k++)
        {
            var targets = items.Select(i => i.Targets[k]).ToList();
            if (targets.Any(t => t is not null)) _auxiliary[k].Loss.Collate(targets, b);
        }
        if (items.Any(i => i.Anchored))
            b.Tensors["anchor_mask"] = torch.tensor(items.Select(i => i.Anchored ? 1f : 0f).ToArray());
        return b;
    }

    /// <inheritdoc/>
    public override LossOutput Loss(MicroBatch batch)
    {
        using var scope = NewDisposeScope();
        using var images = batch.Images();
        var ids = batch["input_ids"].to(Device);
        var active = _auxiliary.Where(a => a.Loss.HasTargets(batch)).ToList();
        bool anchor = _anchor is not null && batch.Tensors.ContainsKey("anchor_mask");
        if (active.Count == 0 && !anchor)
            return new LossOutput(PreferenceLosses.CrossEntropySum(Vlm.Forward(ids, images), batch["labels"].to(Device)).MoveToOuterDisposeScope());
        var states = Vlm.EncodeImages(images);                                                          // [B, S, D]
        var total = PreferenceLosses.CrossEntropySum(Vlm.ForwardEncoded(ids, images, states), batch["labels"].to(Device));
        // The trainer divides metric sums by the caption tokens; scaled so that the logged values stay per counted item.
        var metrics = new Dictionary<string, double>();
        foreach (var (loss, w) in active)
        {
            var (sum, m) = loss.Loss(states, batch);
            foreach (var (name, value) in m) metrics[name] = value * batch.LossElements;
            using var weight = w.ToScalar();
            total = total.add(sum, weight);
        }
        if (anchor)
        {
            var (sum, anchored) = AnchorLoss(states, images, batch);
            metrics["anchor_loss"] = sum.item<float>() / anchored * batch.LossElements;
            using var weight = Config.VisionSettings.AnchorLossWeight.ToScalar();
            total = total.add(sum, weight);
        }
        return new LossOutput(total.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>
    /// The anchor loss (<c>vision.anchor_loss_weight</c>) of a micro-batch: for each image marked in <c>anchor_mask</c> (records
    /// with <c>"anchor": true</c>), the squared distance between its cross-attention source <paramref name="states"/> and the
    /// frozen reference model's,
    /// relative to the latter's squared norm; summed over those images. Returns that sum and how many images it covers.
    /// </summary>
    internal (Tensor Sum, long Images) AnchorLoss(Tensor states, ImageBatch images, MicroBatch batch)
    {
        using var scope = NewDisposeScope();
        var anchorModel = _anchor ?? throw new InvalidOperationException("vision.anchor_loss_weight is 0: no anchor model.");
        var mask = batch["anchor_mask"].to(Device).to_type(ScalarType.Float32);                          // [B]
        Tensor reference;
        using (torch.no_grad()) reference = anchorModel.EncodeImages(images).to_type(ScalarType.Float32);
        if (!reference.shape.SequenceEqual(states.shape))
            throw new InvalidOperationException($"anchor model source [{string.Join(", ", reference.shape)}] differs from the run's [{string.Join(", ", states.shape)}].");
        var diff = states.to_type(ScalarType.Float32).sub(reference).square().sum(new long[] { 1, 2 });
        using var tiny = 1e-12.ToScalar();
        var norm = reference.square().sum(new long[] { 1, 2 }).clamp_min(tiny);
        var sum = diff.div(norm).mul(mask).sum();
        return (sum.MoveToOuterDisposeScope(), (long)mask.sum().item<float>());
    }

    /// <summary>
    /// Saves the Hugging Face Mllama layout (config.json + safetensors), generation_config.json with the prompt format the
    /// recipe trains (<see cref="SavedPromptFormat"/>: completion for the pretraining stages), and <see cref="MediaTokens.InfoFile"/>.
    /// </summary>
    public override void SaveModel(string directory)
    {
        Vlm.PromptFormat = SavedPromptFormat;
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
        if (disposing) { _model?.Dispose(); DisposeExtras(); }
        base.Dispose(disposing);
    }
}

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
/// <see cref="VisionStage2Recipe"/>); images are fitted to at most <c>media.max_tiles</c> tiles of the model's tile size.
/// </summary>
public abstract class VisionRecipe : Recipe
{
    VisionLanguageModel? _model;
    ImagePreprocessor? _pre;
    TorchSharp.Modules.Linear? _glyphHead;
    TorchSharp.Modules.Linear? _shapeHead;
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
    public override IReadOnlyList<string> DefaultTrainable => new[] { "image_encoder", "adapters" };
    /// <inheritdoc/>
    public override IReadOnlyList<(string Name, Tensor Param)> AuxiliaryParameters =>
        new[] { ("glyph_head", _glyphHead), ("shape_head", _shapeHead) }.Where(h => h.Item2 is not null)
            .SelectMany(h => h.Item2!.named_parameters().Select(p => ($"{h.Item1}.{p.name}", (Tensor)p.parameter))).ToList();
    /// <summary>The glyph loss's own head (<c>media.glyph_head = "linear"</c>): decoder width → <see cref="PrintedGlyphs.Alphabet"/>
    /// characters then <see cref="PrintedGlyphs.Slots"/> places; null otherwise.</summary>
    internal TorchSharp.Modules.Linear? GlyphHead => _glyphHead;
    /// <summary>The patch-shape loss's head (<c>media.shape_loss_weight</c> &gt; 0): decoder width → the
    /// <see cref="Synthetic.ShapeScenes.Shapes"/> then background; null otherwise.</summary>
    internal TorchSharp.Modules.Linear? ShapeHead => _shapeHead;
    /// <summary>The frozen starting model the anchor loss compares with (<c>media.anchor_loss_weight</c> &gt; 0); null otherwise.</summary>
    internal VisionLanguageModel? AnchorModel => _anchor;

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, string[]> Components
    {
        get
        {
            if (_model is null)
                return new Dictionary<string, string[]> { ["text"] = new[] { "language_model" }, ["image_encoder"] = new[] { "vision_model" },
                    ["adapters"] = new[] { "multi_modal_projector" }, ["projector"] = new[] { "multi_modal_projector" } };
            var cross = _model.Config.CrossAttentionLayers.Select(i => $"language_model.model.layers.{i}").ToArray();
            var text = new List<string> { "language_model.model.embed_tokens", "language_model.model.norm" };
            if (_model.language_model.lm_head is not null) text.Add("language_model.lm_head");
            text.AddRange(Enumerable.Range(0, _model.Config.Text.NumLayers).Where(i => !_model.Config.CrossAttentionLayers.Contains(i)).Select(i => $"language_model.model.layers.{i}"));
            return new Dictionary<string, string[]>
            {
                ["text"] = text.ToArray(),
                ["embeddings"] = new[] { "language_model.model.embed_tokens" },
                ["image_encoder"] = new[] { "vision_model" },
                ["projector"] = new[] { "multi_modal_projector" },
                ["cross_attention"] = cross,
                ["adapters"] = cross.Prepend("multi_modal_projector").ToArray(),
            };
        }
    }

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
        Media = new MediaSection { Preset = "llama3.2-11b-vision", MaxTiles = maxTiles },
    };

    /// <summary>A small config for <c>mm-train make-data images</c> output (byte tokenizer, tiny-vision).</summary>
    protected TrainConfig SmallConfig(double lr, long steps, int maxTiles, string? initFrom) => new()
    {
        Command = $"mm-train {Name} --config {Name}.json --out runs/{Name}",
        Recipe = Name,
        Tokenizer = "bytes",
        Model = new ModelSection { Preset = "tiny", InitFrom = initFrom },
        Data = new DataSection { Train = "images/manifest.jsonl", Eval = "images-eval/manifest.jsonl", SeqLen = 128, Prefetch = 16 },
        Optim = new OptimSection { Lr = lr, MinLr = lr / 10, WarmupSteps = Math.Min(10, steps / 10), TotalSteps = steps, Schedule = "cosine", WeightDecay = 0.01 },
        Batch = new BatchSection { Unit = "samples", Global = 8, Micro = 4 },
        Train = new LoopSection { SaveEvery = 100, KeepLast = 2, LogEvery = 10, EvalEvery = 100, EvalBatches = 4 },
        Media = new MediaSection { Preset = "tiny-vision", MaxTiles = maxTiles },
    };

    /// <inheritdoc/>
    public override void Setup(TrainConfig config, Device device, ScalarType dtype)
    {
        Config = config; Device = device;
        Tokenizer = Llama3TrainingTokenizer.Resolve(config.Tokenizer);
        _model = Build(config, Tokenizer, device, dtype);
        _pre = Preprocessor(_model.Config.Vision, config.Media.MaxTiles);
        _glyphHead?.Dispose(); _glyphHead = null;
        _shapeHead?.Dispose(); _shapeHead = null;
        _anchor?.Dispose(); _anchor = null;
        if (config.Media.AnchorLossWeight > 0)
        {
            _anchor = LoadAnchor(config, _model.Config, device, dtype);
            foreach (var q in _anchor.parameters()) q.requires_grad_(false);
            _anchor.eval();
        }
        if (config.Media.GlyphLossWeight > 0 && config.Media.GlyphHead == MediaSection.GlyphHeadLinear)
        {
            // Drawn from libtorch's generator, which the trainer has just seeded: the same seed gives the same head.
            _glyphHead = nn.Linear(_model.Config.Text.HiddenSize, PrintedGlyphs.Alphabet.Length + PrintedGlyphs.Slots);
            _glyphHead.to(device, dtype);
        }
        if (config.Media.ShapeLossWeight > 0)
        {
            _shapeHead = nn.Linear(_model.Config.Text.HiddenSize, Synthetic.ShapeScenes.Shapes.Count + 1);
            _shapeHead.to(device, dtype);
        }
    }

    // The frozen model of the anchor loss: media.anchor_from, else model.init_from; its source must have the run's shape.
    static VisionLanguageModel LoadAnchor(TrainConfig config, VisionLanguageConfig run, Device device, ScalarType dtype)
    {
        double w = config.Media.AnchorLossWeight;
        string? dir = config.Media.AnchorFrom;
        if (dir is not null)
        {
            if (!IsVisionFolder(dir))
                throw new ConfigException($"media.anchor_from = '{dir}' is not a vision model folder (no config.json with a vision_config).");
        }
        else if (string.IsNullOrEmpty(config.Model.InitFrom) || !IsVisionFolder(config.Model.InitFrom))
            throw new ConfigException($"media.anchor_loss_weight = {w} needs model.init_from (or media.anchor_from) to name a vision model folder (got model.init_from = '{config.Model.InitFrom}').");
        string key = dir is not null ? "media.anchor_from" : "model.init_from";
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

    /// <summary>A preprocessor fitting images to at most <paramref name="maxTiles"/> tiles, packing to the model's tile count.</summary>
    public static ImagePreprocessor Preprocessor(VisionConfig vision, int maxTiles) =>
        new(vision.ImageSize, vision.MaxNumTiles, vision.SupportedAspectRatios.Where(r => r.H * r.W <= maxTiles).ToList());

    /// <summary>
    /// The vision model of <paramref name="config"/>: a vision folder in <c>model.init_from</c> loads as is; a text folder
    /// is wrapped (see the class remarks); otherwise <c>media.preset</c> (default <c>tiny-vision</c>) with the tokenizer's
    /// vocabulary and <c>model.*</c> overrides, freshly initialised from the seed.
    /// </summary>
    public static VisionLanguageModel Build(TrainConfig config, ITrainingTokenizer tok, Device device, ScalarType dtype)
    {
        var m = config.Model;
        if (!string.IsNullOrEmpty(m.InitFrom))
        {
            if (IsVisionFolder(m.InitFrom)) return VisionLanguageModel.FromPretrained(m.InitFrom, device, dtype);
            return FromTextModel(m.InitFrom, config, device, dtype);
        }
        var preset = VisionPresets.Get(config.Media.Preset ?? "tiny-vision");
        var t = preset.Text;
        t = t with
        {
            HiddenSize = m.HiddenSize ?? t.HiddenSize, NumHeads = m.NumHeads ?? t.NumHeads, NumKvHeads = m.NumKvHeads ?? t.NumKvHeads,
            IntermediateSize = m.IntermediateSize ?? t.IntermediateSize, MaxPositionEmbeddings = m.MaxPositionEmbeddings ?? t.MaxPositionEmbeddings,
            TieWordEmbeddings = m.TieWordEmbeddings ?? t.TieWordEmbeddings,
            VocabSize = tok.VocabSize, ExtraEmbeddingRows = VisionLanguageConfig.ExtraEmbeddingRows,
            BosTokenId = tok.BosId, EosTokenIds = new[] { tok.EosId, tok.EotId }, PadTokenId = tok.PadId,
        };
        var cfg = preset with { Text = t, ImageTokenIndex = MediaTokens.ImageTokenId(tok) };
        return VisionLanguageModel.Create(cfg, device, dtype).InitializeWeights(config.Seed, m.InitStd);
    }

    static bool IsVisionFolder(string dir)
    {
        string p = Path.Combine(dir, "config.json");
        return File.Exists(p) && File.ReadAllText(p).Contains("\"vision_config\"", StringComparison.Ordinal);
    }

    /// <summary>
    /// Builds a vision model around the text decoder in <paramref name="directory"/>: its layers become the self-attention
    /// blocks, <c>media.cross_attention_layers</c> gated cross-attention blocks are interleaved (zero gates: the model
    /// first behaves exactly like the text model), and the image encoder and projector come from <c>media.preset</c>.
    /// </summary>
    public static VisionLanguageModel FromTextModel(string directory, TrainConfig config, Device device, ScalarType dtype)
    {
        using var text = LlamaForCausalLM.FromPretrained(directory, device, dtype);
        var preset = VisionPresets.Get(config.Media.Preset ?? "tiny-vision");
        int self = text.Config.NumLayers;
        int cross = Math.Min(config.Media.CrossAttentionLayers ?? preset.CrossAttentionLayers.Count, self);
        try { return VisionLanguageModel.FromTextModel(text, preset.Vision, VisionLanguageConfig.FusionSchedule(self, cross), config.Seed, config.Model.InitStd); }
        catch (CheckpointFormatException e) { throw new CheckpointFormatException($"{directory}: {e.Message}", e); }
    }

    /// <summary>One prepared record: ids, labels, the preprocessed image and its glyph targets.</summary>
    internal sealed record Item(long[] Ids, long[] Labels, ProcessedImage Image, GlyphTarget[] Glyphs, long[]? Shapes, bool Anchored = false);

    /// <summary>
    /// One printed character's glyph-loss target: its patch's row in the image's cross-attention source, its token (for
    /// the output-head read-out), its index in <see cref="PrintedGlyphs.Alphabet"/> and its place in the text (for the
    /// linear head; places past the last slot count as the last).
    /// </summary>
    internal readonly record struct GlyphTarget(int Row, long Token, int Char, int Slot);

    Item Prepare(ImageCaptionRecord r, bool eval)
    {
        var (ids, labels) = MediaTokens.Caption(Tokenizer, Vlm.Config.ImageTokenIndex, r.Caption, Config.Data.SeqLen);
        var image = RecordMedia.Image(r);
        var p = ProcessImage(_pre!, Vlm.Preprocessor, image);
        var glyphs = eval || Config.Media.GlyphLossWeight == 0 ? Array.Empty<GlyphTarget>()
            : GlyphTargets(r.Caption, image, p, Vlm.Config.Vision, Tokenizer, Config.Media.GlyphHead);
        var shapes = eval || Config.Media.ShapeLossWeight == 0 ? null : ShapeTargets(r.Caption, image, p, Vlm.Config.Vision);
        bool anchored = !eval && Config.Media.AnchorLossWeight > 0 && IsAnchored(r.Caption);
        return new Item(ids, labels, p, glyphs, shapes, anchored);
    }

    /// <summary>Whether the anchor loss (<c>media.anchor_loss_weight</c>) holds a record's image to the starting model's:
    /// every caption but the word and number captions of <see cref="Synthetic.ImageCaptionGrammar"/>.</summary>
    internal static bool IsAnchored(string caption) =>
        Synthetic.ImageCaptionGrammar.Parse(caption) is not { } a || !Synthetic.ShapeScenes.IsPrintKind(a.Kind);

    /// <summary>
    /// Glyph-loss targets of a record (<c>media.glyph_loss_weight</c>): for a word or number caption of
    /// <see cref="Synthetic.ImageCaptionGrammar"/>, the source row of the patch under each printed character, the
    /// character's token, its class and its place; none for other captions or when no ink is found. Characters the
    /// read-out cannot name are left out: with <paramref name="head"/> <c>"output"</c> those the tokenizer does not encode as
    /// one token (their token is then −1 elsewhere), with <c>"linear"</c> those outside <see cref="PrintedGlyphs.Alphabet"/>.
    /// </summary>
    internal static GlyphTarget[] GlyphTargets(string caption, RgbImage image, ProcessedImage p, VisionConfig c, ITrainingTokenizer tok,
        string head = MediaSection.GlyphHeadOutput)
    {
        var a = Synthetic.ImageCaptionGrammar.Parse(caption);
        if (a is null || !Synthetic.ShapeScenes.IsPrintKind(a.Kind) || string.IsNullOrEmpty(a.Text)) return Array.Empty<GlyphTarget>();
        var centres = PrintedGlyphs.Centres(image, a.Text);
        if (centres is null) return Array.Empty<GlyphTarget>();
        bool linear = head == MediaSection.GlyphHeadLinear;
        var list = new List<GlyphTarget>();
        for (int k = 0; k < a.Text.Length; k++)
        {
            var ids = tok.Encode(a.Text[k].ToString());
            int cls = PrintedGlyphs.Alphabet.IndexOf(a.Text[k]);
            if (linear ? cls < 0 : ids.Count != 1) continue;
            var (tile, patch) = PrintedGlyphs.PatchAt(p, c, image, centres[k]);
            list.Add(new GlyphTarget(PrintedGlyphs.SourceRow(c, tile, patch), ids.Count == 1 ? ids[0] : -1, cls, Math.Min(k, PrintedGlyphs.Slots - 1)));
        }
        return list.ToArray();
    }

    /// <summary>
    /// Patch-shape targets of a record (<c>media.shape_loss_weight</c>), one per row of the image's cross-attention source
    /// (<see cref="VisionConfig.MaxNumTiles"/> × <see cref="VisionConfig.TokensPerTile"/>): for a single, count or overlap
    /// caption of <see cref="Synthetic.ImageCaptionGrammar"/>, each patch's class is the captioned shape (index in
    /// <see cref="Synthetic.ShapeScenes.Shapes"/>) whose colour has the most of the image pixels that fall in the patch, if
    /// at least a fifth of them, else background (<c>Shapes.Count</c>); class tokens, empty tiles and patches no pixel falls in
    /// are −100 (ignored). Null for print captions and captions outside the grammar.
    /// </summary>
    internal static long[]? ShapeTargets(string caption, RgbImage image, ProcessedImage p, VisionConfig c)
    {
        var a = Synthetic.ImageCaptionGrammar.Parse(caption);
        if (a is null || a.Kind is not ("single" or "count" or "overlap") || a.Shape is null || a.Colour is null) return null;
        var objects = new List<(int Shape, SkiaSharp.SKColor Colour)> { (IndexOfShape(a.Shape), Synthetic.ShapeScenes.Colour(a.Colour)) };
        if (a.Kind == "overlap" && a.Shape2 is not null && a.Colour2 is not null)
            objects.Add((IndexOfShape(a.Shape2), Synthetic.ShapeScenes.Colour(a.Colour2)));
        if (objects.Any(o => o.Shape < 0)) return null;
        int rows = c.MaxNumTiles * c.TokensPerTile;
        var total = new int[rows];
        var hits = new int[rows, objects.Count];
        for (int y = 0; y < image.Height; y++)
            for (int x = 0; x < image.Width; x++)
            {
                var (tile, patch) = PrintedGlyphs.PatchAt(p, c, image, (x + 0.5, y + 0.5));
                int row = PrintedGlyphs.SourceRow(c, tile, patch);
                total[row]++;
                for (int o = 0; o < objects.Count; o++)
                {
                    var k = objects[o].Colour;
                    // Within 40 of the shape's colour in every channel: its fill, not an edge blended with the background.
                    if (Math.Abs(image[x, y, 0] - k.Red) <= 40 && Math.Abs(image[x, y, 1] - k.Green) <= 40 && Math.Abs(image[x, y, 2] - k.Blue) <= 40) { hits[row, o]++; break; }
                }
            }
        var labels = new long[rows];
        for (int r = 0; r < rows; r++)
        {
            if (total[r] == 0) { labels[r] = -100; continue; }
            int best = 0;
            for (int o = 1; o < objects.Count; o++) if (hits[r, o] > hits[r, best]) best = o;
            labels[r] = hits[r, best] * 5 >= total[r] ? objects[best].Shape : Synthetic.ShapeScenes.Shapes.Count;
        }
        return labels;
    }

    static int IndexOfShape(string shape)
    {
        for (int i = 0; i < Synthetic.ShapeScenes.Shapes.Count; i++) if (Synthetic.ShapeScenes.Shapes[i] == shape) return i;
        return -1;
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
        var ids = TextRecipe.Pad(items.Select(i => i.Ids).ToList(), Tokenizer.PadId, seqLen, out int len);
        var labels = TextRecipe.Pad(items.Select(i => i.Labels).ToList(), -100, seqLen, out _);
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
        var glyphs = items.SelectMany((it, i) => it.Glyphs.Select(g => (Sample: (long)i, Target: g))).ToList();
        if (glyphs.Count > 0)
        {
            b.Tensors["glyph_sample"] = torch.tensor(glyphs.Select(g => g.Sample).ToArray());
            b.Tensors["glyph_row"] = torch.tensor(glyphs.Select(g => (long)g.Target.Row).ToArray());
            b.Tensors["glyph_target"] = torch.tensor(glyphs.Select(g => g.Target.Token).ToArray());
            b.Tensors["glyph_class"] = torch.tensor(glyphs.Select(g => (long)g.Target.Char).ToArray());
            b.Tensors["glyph_slot"] = torch.tensor(glyphs.Select(g => (long)g.Target.Slot).ToArray());
        }
        if (items.Any(i => i.Anchored))
            b.Tensors["anchor_mask"] = torch.tensor(items.Select(i => i.Anchored ? 1f : 0f).ToArray());
        if (items.Any(i => i.Shapes is not null))
        {
            int rows = Vlm.Config.Vision.MaxNumTiles * Vlm.Config.Vision.TokensPerTile;
            var flat = new long[items.Count * rows];
            for (int i = 0; i < items.Count; i++)
            {
                if (items[i].Shapes is { } sh) Array.Copy(sh, 0, flat, i * rows, rows);
                else Array.Fill(flat, -100L, i * rows, rows);
            }
            b.Tensors["shape_labels"] = torch.tensor(flat, new long[] { items.Count, rows });
        }
        return b;
    }

    /// <summary>An <see cref="ImageBatch"/> view of a collated micro-batch.</summary>
    internal static ImageBatch Images(MicroBatch b)
    {
        var mask = b["aspect_ratio_mask"];
        var counts = mask.sum(-1).to(ScalarType.Int64).cpu();
        long rows = counts.shape[0], n = counts.shape[1];
        var data = counts.data<long>().ToArray();
        var numTiles = Enumerable.Range(0, (int)rows).Select(r => (IReadOnlyList<int>)Enumerable.Range(0, (int)n).Select(i => (int)data[r * n + i]).ToList()).ToList();
        return new ImageBatch { PixelValues = b["pixel_values"].alias(), AspectRatioIds = b["aspect_ratio_ids"].alias(), AspectRatioMask = mask.alias(), NumTiles = numTiles };
    }

    /// <inheritdoc/>
    public override LossOutput Loss(MicroBatch batch)
    {
        using var scope = NewDisposeScope();
        using var images = Images(batch);
        var ids = batch["input_ids"].to(Device);
        bool glyphs = batch.Tensors.ContainsKey("glyph_target"), shapes = batch.Tensors.ContainsKey("shape_labels");
        bool anchor = _anchor is not null && batch.Tensors.ContainsKey("anchor_mask");
        if (!glyphs && !shapes && !anchor)
            return new LossOutput(PreferenceLosses.CrossEntropySum(Vlm.Forward(ids, images), batch["labels"].to(Device)).MoveToOuterDisposeScope());
        var states = Vlm.EncodeImages(images);                                                          // [B, S, D]
        var total = PreferenceLosses.CrossEntropySum(Vlm.ForwardEncoded(ids, images, states), batch["labels"].to(Device));
        // The trainer divides metric sums by the caption tokens; scaled so that the logged values are per glyph / patch.
        var metrics = new Dictionary<string, double>();
        if (glyphs)
        {
            var (glyph, correct, slots) = GlyphLoss(states, batch);
            long n = batch["glyph_target"].shape[0];
            metrics["glyph_loss"] = glyph.item<float>() / n * batch.LossElements;
            metrics["glyph_accuracy"] = (double)correct / n * batch.LossElements;
            if (slots is { } sr) metrics["glyph_slot_accuracy"] = (double)sr / n * batch.LossElements;
            using var weight = Config.Media.GlyphLossWeight.ToScalar();
            total = total.add(glyph, weight);
        }
        if (shapes)
        {
            var (shape, right, patches, withLabels) = ShapeLoss(states, batch);
            if (withLabels > 0)
            {
                metrics["shape_loss"] = shape.item<float>() / withLabels * batch.LossElements;
                metrics["shape_accuracy"] = (double)right / patches * batch.LossElements;
            }
            using var weight = Config.Media.ShapeLossWeight.ToScalar();
            total = total.add(shape, weight);
        }
        if (anchor)
        {
            var (sum, anchored) = AnchorLoss(states, images, batch);
            metrics["anchor_loss"] = sum.item<float>() / anchored * batch.LossElements;
            using var weight = Config.Media.AnchorLossWeight.ToScalar();
            total = total.add(sum, weight);
        }
        return new LossOutput(total.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>
    /// The anchor loss (<c>media.anchor_loss_weight</c>) of a micro-batch: for each image marked in <c>anchor_mask</c>, the
    /// squared distance between its cross-attention source <paramref name="states"/> and the frozen starting model's,
    /// relative to the latter's squared norm; summed over those images. Returns that sum and how many images it covers.
    /// </summary>
    internal (Tensor Sum, long Images) AnchorLoss(Tensor states, ImageBatch images, MicroBatch batch)
    {
        using var scope = NewDisposeScope();
        var anchorModel = _anchor ?? throw new InvalidOperationException("media.anchor_loss_weight is 0: no anchor model.");
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
    /// The patch-shape loss (<c>media.shape_loss_weight</c>) of a micro-batch: the run's own head on every source row
    /// against <see cref="ShapeTargets"/>; per image the mean cross-entropy over its labelled patches, summed over the images
    /// that have any. Returns that sum, the patches named right, the patches labelled and the images labelled.
    /// </summary>
    internal (Tensor Sum, long Correct, long Patches, long Images) ShapeLoss(Tensor states, MicroBatch batch)
    {
        using var scope = NewDisposeScope();
        var head = _shapeHead ?? throw new InvalidOperationException("media.shape_loss_weight is 0: no shape head.");
        var labels = batch["shape_labels"].to(Device);                                                  // [B, S]
        if (labels.shape[1] != states.shape[1])
            throw new InvalidOperationException($"shape labels have {labels.shape[1]} rows per image, the source has {states.shape[1]}.");
        var logits = head.forward(states).to_type(ScalarType.Float32);                                 // [B, S, classes]
        long classes = logits.shape[2];
        var ce = nn.functional.cross_entropy(logits.reshape(-1, classes), labels.reshape(-1), ignore_index: -100, reduction: nn.Reduction.None)
            .reshape(labels.shape[0], labels.shape[1]);
        var valid = labels.ge(Scalars.Zero);
        var count = valid.sum(1).to_type(ScalarType.Float32);                                          // [B]
        var sum = ce.sum(1).div(count.clamp_min(Scalars.One)).sum();
        long right = logits.argmax(-1).eq(labels).logical_and(valid).sum().item<long>();
        long patches = valid.sum().item<long>(), images = count.gt(Scalars.Zero).sum().item<long>();
        return (sum.MoveToOuterDisposeScope(), right, patches, images);
    }

    /// <summary>
    /// The glyph loss (<c>media.glyph_loss_weight</c>) of a micro-batch: each target's cross-attention source row, read
    /// either through the decoder's final norm and output head against the character's token, or (<c>media.glyph_head =
    /// "linear"</c>) by the run's own head against the character's class plus, as a second term, its place in the text.
    /// Returns the summed cross-entropy, the characters read right and (linear head only) the places read right.
    /// </summary>
    internal (Tensor Sum, long Correct, long? SlotsCorrect) GlyphLoss(Tensor states, MicroBatch batch)
    {
        using var scope = NewDisposeScope();
        long s = states.shape[1];
        using var rowsPerSample = s.ToScalar();
        var flat = batch["glyph_sample"].mul(rowsPerSample).add(batch["glyph_row"], Scalars.One).to(Device);
        var rows = states.reshape(-1, states.shape[2]).index_select(0, flat);
        if (_glyphHead is { } head)
        {
            var both = head.forward(rows).to_type(ScalarType.Float32);                                  // [G, chars + slots]
            int chars = PrintedGlyphs.Alphabet.Length;
            var charLogits = both.narrow(1, 0, chars);
            var slotLogits = both.narrow(1, chars, PrintedGlyphs.Slots);
            var cls = batch["glyph_class"].to(both.device);
            var slot = batch["glyph_slot"].to(both.device);
            long charsRight = charLogits.argmax(-1).eq(cls).sum().item<long>();
            long slotsRight = slotLogits.argmax(-1).eq(slot).sum().item<long>();
            var total = nn.functional.cross_entropy(charLogits, cls, reduction: nn.Reduction.Sum)
                .add(nn.functional.cross_entropy(slotLogits, slot, reduction: nn.Reduction.Sum), Scalars.One);
            return (total.MoveToOuterDisposeScope(), charsRight, slotsRight);
        }
        var lm = Vlm.language_model;
        var logits = lm.Logits(lm.model.norm.forward(rows));                                             // [G, V] f32
        var target = batch["glyph_target"].to(logits.device);
        long correct = logits.argmax(-1).eq(target).sum().item<long>();
        var sum = nn.functional.cross_entropy(logits, target, reduction: nn.Reduction.Sum);
        return (sum.MoveToOuterDisposeScope(), correct, null);
    }

    /// <summary>
    /// Saves the Hugging Face Mllama layout (config.json + safetensors), generation_config.json with the completion
    /// prompt format these pretraining stages train, and <see cref="MediaTokens.InfoFile"/>.
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
        if (disposing) { _model?.Dispose(); _glyphHead?.Dispose(); _shapeHead?.Dispose(); _anchor?.Dispose(); }
        base.Dispose(disposing);
    }
}

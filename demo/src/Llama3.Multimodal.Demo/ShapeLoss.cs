using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Demo;

/// <summary>
/// The demo's patch-shape loss for rendered shape scenes (single, count and overlap scenes of <c>mm-demo make-data
/// images</c>), registered as <c>shape</c>: a linear head of the run's own reads every patch's cross-attention source row
/// and is trained to name the shape that covers that patch (the one whose colour has the most of its pixels, at least a
/// fifth of them; otherwise "background"), so that the back shape of an overlap is named where it shows. Per image the
/// mean cross-entropy over its patches, summed over the images. The head is not part of the saved model. Not part of
/// Llama 3's recipe.
/// </summary>
public sealed class ShapeLoss : IVisionAuxiliaryLoss
{
    /// <summary>Registered name.</summary>
    public const string Name = "shape";

    TorchSharp.Modules.Linear? _head;
    VisionAuxiliaryContext? _ctx;

    /// <summary>The head: decoder width → the <see cref="ShapeScenes.Shapes"/> then background.</summary>
    public TorchSharp.Modules.Linear? Head => _head;

    /// <inheritdoc/>
    public void Setup(VisionAuxiliaryContext context)
    {
        _ctx = context;
        _head?.Dispose();
        _head = nn.Linear(context.Model.Config.Text.HiddenSize, ShapeScenes.Shapes.Count + 1);
        _head.to(context.Device, context.Dtype);
    }

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, Tensor Param)> Parameters =>
        _head is null ? Array.Empty<(string, Tensor)>() : _head.named_parameters().Select(p => ($"shape_head.{p.name}", (Tensor)p.parameter)).ToList();

    /// <inheritdoc/>
    public object? Targets(ImageCaptionRecord record, RgbImage image, ProcessedImage processed)
    {
        var ctx = _ctx ?? throw new InvalidOperationException("call Setup first.");
        return Of(record.Caption, image, processed, ctx.Model.Config.Vision);
    }

    /// <summary>
    /// Patch-shape targets of a record, one per row of the image's cross-attention source
    /// (<see cref="VisionConfig.MaxNumTiles"/> × <see cref="VisionConfig.TokensPerTile"/>): for a single, count or overlap
    /// caption of <see cref="ImageCaptionGrammar"/>, each patch's class is the captioned shape (index in
    /// <see cref="ShapeScenes.Shapes"/>) whose colour has the most of the image pixels that fall in the patch, if at least a
    /// fifth of them, else background (<c>Shapes.Count</c>); class tokens, empty tiles and patches no pixel falls in are
    /// −100 (ignored). Null for print captions and captions outside the grammar.
    /// </summary>
    public static long[]? Of(string caption, RgbImage image, ProcessedImage p, VisionConfig c)
    {
        var a = ImageCaptionGrammar.Parse(caption);
        if (a is null || a.Kind is not ("single" or "count" or "overlap") || a.Shape is null || a.Colour is null) return null;
        var objects = new List<(int Shape, SkiaSharp.SKColor Colour)> { (IndexOfShape(a.Shape), ShapeScenes.Colour(a.Colour)) };
        if (a.Kind == "overlap" && a.Shape2 is not null && a.Colour2 is not null)
            objects.Add((IndexOfShape(a.Shape2), ShapeScenes.Colour(a.Colour2)));
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
            labels[r] = hits[r, best] * 5 >= total[r] ? objects[best].Shape : ShapeScenes.Shapes.Count;
        }
        return labels;
    }

    static int IndexOfShape(string shape)
    {
        for (int i = 0; i < ShapeScenes.Shapes.Count; i++) if (ShapeScenes.Shapes[i] == shape) return i;
        return -1;
    }

    /// <inheritdoc/>
    public void Collate(IReadOnlyList<object?> targets, MicroBatch batch)
    {
        var c = (_ctx ?? throw new InvalidOperationException("call Setup first.")).Model.Config.Vision;
        int rows = c.MaxNumTiles * c.TokensPerTile;
        var flat = new long[targets.Count * rows];
        for (int i = 0; i < targets.Count; i++)
        {
            if (targets[i] is long[] sh) Array.Copy(sh, 0, flat, i * rows, rows);
            else Array.Fill(flat, -100L, i * rows, rows);
        }
        batch.Tensors["shape_labels"] = torch.tensor(flat, new long[] { targets.Count, rows });
    }

    /// <inheritdoc/>
    public bool HasTargets(MicroBatch batch) => batch.Tensors.ContainsKey("shape_labels");

    /// <inheritdoc/>
    public (Tensor Sum, IReadOnlyDictionary<string, double> Metrics) Loss(Tensor states, MicroBatch batch)
    {
        var (sum, right, patches, images) = Compute(states, batch);
        var m = new Dictionary<string, double>();
        if (images > 0)
        {
            m["shape_loss"] = sum.item<float>() / images;
            m["shape_accuracy"] = (double)right / patches;
        }
        return (sum, m);
    }

    /// <summary>
    /// The loss of a micro-batch: the head on every source row against <see cref="Of"/>'s labels; per image the mean
    /// cross-entropy over its labelled patches, summed over the images that have any. Returns that sum, the patches named
    /// right, the patches labelled and the images labelled.
    /// </summary>
    public (Tensor Sum, long Correct, long Patches, long Images) Compute(Tensor states, MicroBatch batch)
    {
        var ctx = _ctx ?? throw new InvalidOperationException("call Setup first.");
        var head = _head ?? throw new InvalidOperationException("call Setup first.");
        using var scope = NewDisposeScope();
        var labels = batch["shape_labels"].to(ctx.Device);                                              // [B, S]
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

    /// <inheritdoc/>
    public void Dispose() { _head?.Dispose(); _head = null; }
}

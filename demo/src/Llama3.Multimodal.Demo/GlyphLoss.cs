using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Demo;

/// <summary>
/// The demo's glyph loss for rendered print (the word and number scenes of <c>mm-demo make-data images</c>), registered as
/// <c>glyph</c> (read-out through the frozen decoder's final norm and output head, against the character's token) and
/// <c>glyph_linear</c> (a linear head of the run's own naming the character among 0–9 and A–Z and its place in the text,
/// first … fourth: two cross-entropy terms; the head is kept in checkpoints, not in the saved model). The
/// cross-attention source row of the patch under each glyph's centre is what is read. Not part of Llama 3's recipe.
/// </summary>
public sealed class GlyphLoss : IVisionAuxiliaryLoss
{
    /// <summary>Registered name of the output-head read-out.</summary>
    public const string OutputName = "glyph";
    /// <summary>Registered name of the own-head read-out.</summary>
    public const string LinearName = "glyph_linear";

    readonly bool _linear;
    TorchSharp.Modules.Linear? _head;
    VisionAuxiliaryContext? _ctx;

    /// <summary>A glyph loss read out by the decoder's output head, or (<paramref name="linear"/>) by a head of its own.</summary>
    public GlyphLoss(bool linear) => _linear = linear;

    /// <summary>The own head (<c>glyph_linear</c>): decoder width → <see cref="PrintedGlyphs.Alphabet"/> characters then
    /// <see cref="PrintedGlyphs.Slots"/> places; null for <c>glyph</c>.</summary>
    public TorchSharp.Modules.Linear? Head => _head;

    /// <inheritdoc/>
    public void Setup(VisionAuxiliaryContext context)
    {
        _ctx = context;
        _head?.Dispose(); _head = null;
        if (!_linear) return;
        // Drawn from libtorch's generator, which the trainer has just seeded: the same seed gives the same head.
        _head = nn.Linear(context.Model.Config.Text.HiddenSize, PrintedGlyphs.Alphabet.Length + PrintedGlyphs.Slots);
        _head.to(context.Device, context.Dtype);
    }

    /// <inheritdoc/>
    public IReadOnlyList<(string Name, Tensor Param)> Parameters =>
        _head is null ? Array.Empty<(string, Tensor)>() : _head.named_parameters().Select(p => ($"glyph_head.{p.name}", (Tensor)p.parameter)).ToList();

    /// <summary>
    /// One printed character's target: its patch's row in the image's cross-attention source, its token (for the
    /// output-head read-out), its index in <see cref="PrintedGlyphs.Alphabet"/> and its place in the text (for the linear
    /// head; places past the last slot count as the last).
    /// </summary>
    public readonly record struct Target(int Row, long Token, int Char, int Slot);

    /// <inheritdoc/>
    public object? Targets(ImageCaptionRecord record, RgbImage image, ProcessedImage processed)
    {
        var ctx = _ctx ?? throw new InvalidOperationException("call Setup first.");
        var t = Of(record.Caption, image, processed, ctx.Model.Config.Vision, ctx.Tokenizer, _linear);
        return t.Length == 0 ? null : t;
    }

    /// <summary>
    /// Glyph targets of a record: for a word or number caption of <see cref="ImageCaptionGrammar"/>, the source row of the
    /// patch under each printed character, the character's token, its class and its place; none for other captions or
    /// when no ink is found. Characters the read-out cannot name are left out: for the output head those the tokenizer does
    /// not encode as one token (their token is then −1 elsewhere), for the linear head those outside
    /// <see cref="PrintedGlyphs.Alphabet"/>.
    /// </summary>
    public static Target[] Of(string caption, RgbImage image, ProcessedImage p, VisionConfig c, ITrainingTokenizer tok, bool linear)
    {
        var a = ImageCaptionGrammar.Parse(caption);
        if (a is null || !ShapeScenes.IsPrintKind(a.Kind) || string.IsNullOrEmpty(a.Text)) return Array.Empty<Target>();
        var centres = PrintedGlyphs.Centres(image, a.Text);
        if (centres is null) return Array.Empty<Target>();
        var list = new List<Target>();
        for (int k = 0; k < a.Text.Length; k++)
        {
            var ids = tok.Encode(a.Text[k].ToString());
            int cls = PrintedGlyphs.Alphabet.IndexOf(a.Text[k]);
            if (linear ? cls < 0 : ids.Count != 1) continue;
            var (tile, patch) = PrintedGlyphs.PatchAt(p, c, image, centres[k]);
            list.Add(new Target(PrintedGlyphs.SourceRow(c, tile, patch), ids.Count == 1 ? ids[0] : -1, cls, Math.Min(k, PrintedGlyphs.Slots - 1)));
        }
        return list.ToArray();
    }

    /// <inheritdoc/>
    public void Collate(IReadOnlyList<object?> targets, MicroBatch batch)
    {
        var glyphs = targets.SelectMany((t, i) => ((Target[]?)t ?? Array.Empty<Target>()).Select(g => (Sample: (long)i, Target: g))).ToList();
        if (glyphs.Count == 0) return;
        batch.Tensors["glyph_sample"] = torch.tensor(glyphs.Select(g => g.Sample).ToArray());
        batch.Tensors["glyph_row"] = torch.tensor(glyphs.Select(g => (long)g.Target.Row).ToArray());
        batch.Tensors["glyph_target"] = torch.tensor(glyphs.Select(g => g.Target.Token).ToArray());
        batch.Tensors["glyph_class"] = torch.tensor(glyphs.Select(g => (long)g.Target.Char).ToArray());
        batch.Tensors["glyph_slot"] = torch.tensor(glyphs.Select(g => (long)g.Target.Slot).ToArray());
    }

    /// <inheritdoc/>
    public bool HasTargets(MicroBatch batch) => batch.Tensors.ContainsKey("glyph_target");

    /// <inheritdoc/>
    public (Tensor Sum, IReadOnlyDictionary<string, double> Metrics) Loss(Tensor states, MicroBatch batch)
    {
        var (sum, correct, slots) = Compute(states, batch);
        long n = batch["glyph_target"].shape[0];
        var m = new Dictionary<string, double> { ["glyph_loss"] = sum.item<float>() / n, ["glyph_accuracy"] = (double)correct / n };
        if (slots is { } sr) m["glyph_slot_accuracy"] = (double)sr / n;
        return (sum, m);
    }

    /// <summary>
    /// The loss of a micro-batch: each target's source row, read either through the decoder's final norm and output head
    /// against the character's token, or by the run's own head against the character's class plus, as a second term,
    /// its place in the text. Returns the summed cross-entropy, the characters read right and (own head only) the places
    /// read right.
    /// </summary>
    public (Tensor Sum, long Correct, long? SlotsCorrect) Compute(Tensor states, MicroBatch batch)
    {
        var ctx = _ctx ?? throw new InvalidOperationException("call Setup first.");
        using var scope = NewDisposeScope();
        long s = states.shape[1];
        using var rowsPerSample = s.ToScalar();
        var flat = batch["glyph_sample"].mul(rowsPerSample).add(batch["glyph_row"], Scalars.One).to(ctx.Device);
        var rows = states.reshape(-1, states.shape[2]).index_select(0, flat);
        if (_head is { } head)
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
        var lm = ctx.Model.language_model;
        var logits = lm.Logits(lm.model.norm.forward(rows));                                             // [G, V] f32
        var target = batch["glyph_target"].to(logits.device);
        long correct = logits.argmax(-1).eq(target).sum().item<long>();
        var sum = nn.functional.cross_entropy(logits, target, reduction: nn.Reduction.Sum);
        return (sum.MoveToOuterDisposeScope(), correct, null);
    }

    /// <inheritdoc/>
    public void Dispose() { _head?.Dispose(); _head = null; }
}

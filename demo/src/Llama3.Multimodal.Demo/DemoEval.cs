using System.Text.Json.Nodes;
using Llama3.Multimodal.Video;
using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Demo;

/// <summary>
/// The demo's held-out evaluation (<c>mm-demo eval</c>): the library's predictions (<see cref="MultimodalEval"/>) scored
/// with the demo grammars' scorers (caption exact match with the printed word's case kept, per-attribute and per-kind
/// accuracy; temporal-caption accuracy, reversed rate and per-part accuracy), and two probes that locate where a model
/// loses the digits' order or the motion direction.
/// </summary>
public static class DemoEval
{
    static GenerationOptions Greedy(int maxNew, ISet<int> stop, int beams) => new() { MaxNewTokens = maxNew, Temperature = 0, StopTokens = stop.ToList(), NumBeams = beams };

    static JsonObject Header(string task, string model, string data, int count) =>
        new() { ["task"] = task, ["model"] = Path.GetFullPath(model), ["data"] = Path.GetFullPath(data), ["count"] = count };

    /// <summary>
    /// Captions every image of an image+caption manifest with a vision model: caption exact match
    /// (<see cref="CaptionScorer.ExactMatch"/>), per-attribute accuracy and exact match per scene kind (references parsed
    /// with the caption grammar), with <paramref name="examples"/> reference/prediction pairs (−1: all).
    /// </summary>
    public static JsonObject Caption(string modelDir, string manifest, int? limit = null, int maxNewTokens = 128, int examples = MultimodalEval.DefaultExamples, int numBeams = 1)
    {
        var records = JsonlManifest.ReadImageCaptions(manifest, false, out _).Take(limit ?? int.MaxValue).ToList();
        var preds = MultimodalEval.CaptionPredictions(modelDir, records.Select(r => r.Image).ToList(), maxNewTokens, numBeams);
        var refs = records.Select(r => r.Caption).ToList();
        var o = MultimodalEval.Report("caption", modelDir, manifest, refs, preds, examples, records.Select(r => r.Image).ToList());
        o["exact_match"] = CaptionScorer.ExactMatch(preds, refs);
        o["per_attribute"] = MultimodalEval.Counts(CaptionScorer.PerAttribute(preds, refs.Select(ImageCaptionGrammar.Parse).ToList()));
        o["per_kind"] = MultimodalEval.Counts(CaptionScorer.PerKind(preds, refs));
        return o;
    }

    /// <summary>Captions every clip of a video manifest with a video model: temporal-caption accuracy, the rate of
    /// time-reversed captions, and per-part accuracy (first subject's colour and shape, each event, the second subject), with
    /// <paramref name="examples"/> reference/prediction pairs (−1: all).</summary>
    public static JsonObject Video(string modelDir, string manifest, int? limit = null, int maxNewTokens = 160, int examples = MultimodalEval.DefaultExamples, int numBeams = 1)
    {
        var records = JsonlManifest.ReadVideoCaptions(manifest, false, out _).Take(limit ?? int.MaxValue).ToList();
        var preds = MultimodalEval.VideoPredictions(modelDir, records.Select(r => r.Video).ToList(), maxNewTokens, numBeams);
        var refs = records.Select(r => r.Caption).ToList();
        var o = MultimodalEval.Report("video", modelDir, manifest, refs, preds, examples, records.Select(r => r.Video).ToList());
        o["accuracy"] = VideoCaptionScorer.Accuracy(preds, refs);
        o["reversed_rate"] = VideoCaptionScorer.ReversedRate(preds, refs);
        o["per_part"] = MultimodalEval.Counts(VideoCaptionScorer.PerPart(preds, refs));
        return o;
    }

    /// <summary>
    /// Where a video model loses motion: for every "moves" event of the clips' captions (event k fills half k of the
    /// clip), a <see cref="LinearProbe"/> reads the direction from features of the half's first and last sampled frame:
    /// the frame tokens after the image encoder and projector (<c>frame_tokens</c>), the 8 tokens per frame farthest from
    /// the frame's mean token, averaged (<c>object_tokens</c>), all tokens averaged (<c>mean_tokens</c>) and the
    /// aggregator's output for those frames' groups (<c>aggregated</c>). Each reports the best held-back accuracy over ridge
    /// strengths 0.01, 1 and 100 (the first three quarters of the events fit, the last quarter is scored; chance 0.25).
    /// </summary>
    public static JsonObject VideoDirectionProbe(string modelDir, string manifest, int? limit = null)
    {
        var records = JsonlManifest.ReadVideoCaptions(manifest, false, out _).Take(limit ?? int.MaxValue).ToList();
        using var model = VideoLanguageModel.FromPretrained(modelDir);
        model.eval();
        int frames = model.Config.Video.NumFrames, perGroup = model.Config.Video.Aggregator.FramesPerGroup, half = frames / 2;
        var sets = new Dictionary<string, List<float[]>> { ["frame_tokens"] = new(), ["object_tokens"] = new(), ["mean_tokens"] = new(), ["aggregated"] = new() };
        var labels = new List<int>();
        int clips = 0;
        foreach (var r in records)
        {
            var events = VideoCaptionGrammar.Parse(r.Caption)
                ?? throw new DataFormatException($"{manifest}: '{r.Caption}' does not follow the video caption grammar.");
            var moves = Enumerable.Range(0, Math.Min(2, events.Count)).Where(k => events[k].Verb == "moves").ToList();
            if (moves.Count == 0) continue;
            clips++;
            using var scope = NewDisposeScope();
            using var read = model.ReadFrames(r.Video);
            using var noGrad = torch.no_grad();
            var tokens = model.EncodeFrames(read);                                                   // [F, T, D]
            var agg = model.video_model.aggregator.Forward(tokens.unsqueeze(0)).squeeze(0);          // [G, L, D]
            foreach (int k in moves)
            {
                int d = VideoCaptionGrammar.Directions.ToList().IndexOf(events[k].Argument!);
                if (d < 0) throw new DataFormatException($"{manifest}: '{events[k]}' names no direction of {string.Join("/", VideoCaptionGrammar.Directions)}.");
                int f0 = k * half, f1 = (k + 1) * half - 1;
                float[] Pair(Func<Tensor, Tensor> of) => torch.cat(new[] { of(tokens[f0]), of(tokens[f1]) }).data<float>().ToArray();
                sets["frame_tokens"].Add(Pair(t => t.flatten()));
                sets["object_tokens"].Add(Pair(ObjectTokens));
                sets["mean_tokens"].Add(Pair(t => t.mean(new long[] { 0 })));
                sets["aggregated"].Add(torch.cat(new[] { agg[f0 / perGroup].flatten(), agg[f1 / perGroup].flatten() }).data<float>().ToArray());
                labels.Add(d);
            }
        }
        if (labels.Count < 8) throw new DataFormatException($"{manifest}: {labels.Count} \"moves\" events; the probe needs at least 8.");
        var o = Header("video-probe", modelDir, manifest, clips);
        o["moves"] = labels.Count;
        o["chance"] = 1.0 / VideoCaptionGrammar.Directions.Count;
        var acc = new JsonObject();
        foreach (var (name, x) in sets)
            acc[name] = BestProbe(x, labels, VideoCaptionGrammar.Directions.Count);
        o["direction_accuracy"] = acc;
        return o;
    }

    /// <summary>
    /// Where a vision model loses printed two-digit numbers: for every "the number NN" record of an image manifest, a
    /// <see cref="LinearProbe"/> reads the tens digit and the ones digit from the patch embeddings of the image's tiles
    /// before any encoder layer (<c>patch_embeddings</c>), from the cross-attention source the decoder reads (encoder and
    /// projector output, <c>encoder_tokens</c>) and from that source averaged over its tokens (<c>mean_tokens</c>: no
    /// position left, so the digits' order must be in the tokens themselves). The first three quarters of the numbers fit,
    /// the last quarter is scored (best of ridge strengths 0.01, 1 and 100; chance 0.1), and the model's own greedy
    /// captions of that last quarter are scored the same way (<c>caption</c>). All images must have the same tile count.
    /// Glyph-centred probes read one patch only, the one under each digit's centre (found from the ink's bounding box and
    /// the stroke font's metrics): the digit (<c>glyph_digit</c>, chance 0.1) and whether it is the left or the right one
    /// (<c>glyph_order</c>, chance 0.5), from that patch's embedding and from its token of the cross-attention source.
    /// </summary>
    public static JsonObject NumberProbe(string modelDir, string manifest, int? limit = null, int maxNewTokens = 32)
    {
        var (_, tok, _, maxTiles) = MediaTokens.ReadInfo(modelDir);
        var records = JsonlManifest.ReadImageCaptions(manifest, false, out _)
            .Where(r => ImageCaptionGrammar.Parse(r.Caption) is { Kind: "number", Text.Length: 2 }).Take(limit ?? int.MaxValue).ToList();
        if (records.Count < 8) throw new DataFormatException($"{manifest}: {records.Count} two-digit \"the number NN\" records; the probe needs at least 8.");
        using var model = VisionLanguageModel.FromPretrained(modelDir);
        model.eval();
        var pre = VisionRecipe.Preprocessor(model.Config.Vision, maxTiles);
        var stop = new HashSet<int> { tok.EosId, tok.EotId };
        int tokens = model.Config.Vision.TokensPerTile, held = records.Count - (int)(records.Count * 0.75);
        int? tiles = null;
        var sets = new Dictionary<string, List<float[]>> { ["patch_embeddings"] = new(), ["encoder_tokens"] = new(), ["mean_tokens"] = new() };
        var digits = new[] { new List<int>(), new List<int>() };
        var glyphs = new Dictionary<string, List<float[]>> { ["patch_embeddings"] = new(), ["encoder_tokens"] = new() };
        var glyphDigit = new List<int>();
        var glyphOrder = new List<int>();
        var said = new List<string>();
        for (int i = 0; i < records.Count; i++)
        {
            var r = records[i];
            using var scope = NewDisposeScope();
            var image = ImageLoader.Load(r.Image);
            string text = ImageCaptionGrammar.Parse(r.Caption).Text!;
            using var p = VisionRecipe.ProcessImage(pre, model.Preprocessor, image);
            tiles ??= p.NumTiles;
            if (p.NumTiles != tiles) throw new DataFormatException($"{manifest}: {r.Image} makes {p.NumTiles} tiles, the first image {tiles}; probe one image size at a time.");
            using var batch = model.Preprocessor.Pack(new[] { (IReadOnlyList<ProcessedImage>)new[] { p } });
            using (torch.no_grad())
            {
                var c = model.Config.Vision;
                var px = batch.PixelValues.reshape(-1, c.NumChannels, c.ImageSize, c.ImageSize).narrow(0, 0, p.NumTiles).to(model.vision_model.class_embedding.dtype);
                var patches = model.vision_model.patch_embedding.forward(px).to(ScalarType.Float32);              // [tiles, g², D]
                sets["patch_embeddings"].Add(patches.flatten().data<float>().ToArray());
                var source = model.EncodeImages(batch)[0].narrow(0, 0, (long)p.NumTiles * tokens).to(ScalarType.Float32);
                sets["encoder_tokens"].Add(source.flatten().data<float>().ToArray());
                sets["mean_tokens"].Add(source.mean(new long[] { 0 }).data<float>().ToArray());
                var centres = PrintedGlyphs.Centres(image, text)
                    ?? throw new DataFormatException($"{manifest}: {r.Image} shows no printed text (no pixel differs from the background).");
                for (int k = 0; k < 2; k++)
                {
                    var (tile, patch) = PrintedGlyphs.PatchAt(p, c, image, centres[k]);
                    glyphs["patch_embeddings"].Add(patches[tile, patch].data<float>().ToArray());
                    glyphs["encoder_tokens"].Add(source[PrintedGlyphs.SourceRow(c, tile, patch)].data<float>().ToArray());
                    glyphDigit.Add(text[k] - '0');
                    glyphOrder.Add(k);
                }
            }
            digits[0].Add(text[0] - '0');
            digits[1].Add(text[1] - '0');
            if (i >= records.Count - held)
            {
                var result = model.GenerateBatch(new[] { MediaTokens.CaptionPrompt(tok, model.Config.ImageTokenIndex) }, batch, Greedy(maxNewTokens, stop, 1))[0];
                said.Add(MediaTokens.Decode(tok, result.Tokens.ToList()).Trim());
            }
        }
        var o = Header("number-probe", modelDir, manifest, records.Count);
        o["tiles"] = tiles;
        o["scored"] = held;
        o["chance"] = 0.1;
        var names = new[] { "tens", "ones" };
        foreach (var (name, x) in sets)
        {
            var acc = new JsonObject();
            for (int k = 0; k < 2; k++) acc[names[k]] = BestProbe(x, digits[k], 10);
            o[name] = acc;
        }
        foreach (var (label, classes, name) in new[] { (glyphDigit, 10, "glyph_digit"), (glyphOrder, 2, "glyph_order") })
        {
            var acc = new JsonObject();
            foreach (var (feature, x) in glyphs) acc[feature] = BestProbe(x, label, classes);
            o[name] = acc;
        }
        var read = said.Select(s => ImageCaptionGrammar.Parse(s) is { Kind: "number", Text.Length: 2 } a ? a.Text! : "").ToList();
        double Share(Func<int, bool> right) => Enumerable.Range(0, held).Count(right) / (double)held;
        int first = records.Count - held;
        bool Said(int j, int place, int digit) => read[j].Length == 2 && read[j][place] - '0' == digits[digit][first + j];   // caption j's digit at place = the true digit
        o["caption"] = new JsonObject
        {
            ["tens"] = Share(j => Said(j, 0, 0)),
            ["ones"] = Share(j => Said(j, 1, 1)),
            ["both"] = Share(j => Said(j, 0, 0) && Said(j, 1, 1)),
            ["swapped"] = Share(j => digits[0][first + j] != digits[1][first + j] && Said(j, 0, 1) && Said(j, 1, 0)),
        };
        return o;
    }

    /// <summary>The best held-back accuracy of a <see cref="LinearProbe"/> over ridge strengths 0.01, 1 and 100.</summary>
    static double BestProbe(IReadOnlyList<float[]> features, IReadOnlyList<int> labels, int classes) =>
        new[] { 0.01, 1.0, 100.0 }.Max(l => LinearProbe.Fit(features, labels, classes, l).Test);

    /// <summary>The 8 tokens of a frame [T, D] farthest from its mean token, averaged: a crude pooling over the moving object.</summary>
    static Tensor ObjectTokens(Tensor frame)
    {
        var far = (frame - frame.mean(new long[] { 0 }, keepdim: true)).norm(1);
        return frame.index_select(0, far.topk((int)Math.Min(8, frame.shape[0])).indexes).mean(new long[] { 0 });
    }
}

using System.Text.Json.Nodes;
using Llama3.Multimodal.Speech;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Training.Synthetic;
using Llama3.Multimodal.Video;
using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// Held-out evaluation of models written by the multimodal recipes (<c>mm-train eval</c>): greedy decoding in each
/// recipe's own prompt format, scored with the Synthetic scorers. Results are JSON objects (scores + a few examples).
/// </summary>
public static class MultimodalEval
{
    /// <summary>Greedy decoding (with <paramref name="beams"/> &gt; 1: beam search) of at most <paramref name="maxNew"/> tokens, ending at any of <paramref name="stop"/> (the KV-cached generation path the models' own APIs use).</summary>
    static GenerationOptions Greedy(int maxNew, ISet<int> stop, int beams) => new() { MaxNewTokens = maxNew, Temperature = 0, StopTokens = stop.ToList(), NumBeams = beams };

    /// <summary>How many reference/prediction pairs an evaluation lists when not told otherwise.</summary>
    public const int DefaultExamples = 5;

    static JsonArray Examples(IReadOnlyList<string> refs, IReadOnlyList<string> preds, int n) =>
        new(refs.Zip(preds).Take(n < 0 ? int.MaxValue : n).Select(p => (JsonNode)new JsonObject { ["reference"] = p.First, ["prediction"] = p.Second }).ToArray());

    static JsonObject Counts(IReadOnlyDictionary<string, (int Correct, int Total, double Accuracy)> scores)
    {
        var o = new JsonObject();
        foreach (var (name, v) in scores) o[name] = new JsonObject { ["correct"] = v.Correct, ["total"] = v.Total, ["accuracy"] = v.Accuracy };
        return o;
    }

    static JsonObject Header(string task, string model, string data, int count) =>
        new() { ["task"] = task, ["model"] = Path.GetFullPath(model), ["data"] = Path.GetFullPath(data), ["count"] = count };

    /// <summary>
    /// Captions every image of an image+caption manifest with a <c>vision-stage1/2</c> model: caption exact match,
    /// per-attribute accuracy and exact match per scene kind (references parsed with the caption grammar). <paramref name="examples"/> reference/prediction
    /// pairs are listed (−1: all); <paramref name="numBeams"/> &gt; 1 decodes with beam search.
    /// </summary>
    public static JsonObject Caption(string modelDir, string manifest, int? limit = null, int maxNewTokens = 128, int examples = DefaultExamples, int numBeams = 1)
    {
        var (_, tok, _, maxTiles) = MediaTokens.ReadInfo(modelDir);
        var records = JsonlManifest.ReadImageCaptions(manifest, false, out _).Take(limit ?? int.MaxValue).ToList();
        using var model = VisionLanguageModel.FromPretrained(modelDir);
        model.eval();
        var pre = VisionRecipe.Preprocessor(model.Config.Vision, maxTiles);
        var stop = new HashSet<int> { tok.EosId, tok.EotId };
        int imageTok = model.Config.ImageTokenIndex;
        var preds = new List<string>();
        foreach (var r in records)
        {
            using var scope = NewDisposeScope();
            using var p = VisionRecipe.ProcessImage(pre, model.Preprocessor, ImageLoader.Load(r.Image));
            using var batch = model.Preprocessor.Pack(new[] { (IReadOnlyList<ProcessedImage>)new[] { p } });
            var result = model.GenerateBatch(new[] { MediaTokens.CaptionPrompt(tok, imageTok) }, batch, Greedy(maxNewTokens, stop, numBeams))[0];
            preds.Add(MediaTokens.Decode(tok, result.Tokens.ToList()).Trim());
        }
        var refs = records.Select(r => r.Caption).ToList();
        var o = Header("caption", modelDir, manifest, records.Count);
        o["exact_match"] = CaptionScorer.ExactMatch(preds, refs);
        o["per_attribute"] = Counts(CaptionScorer.PerAttribute(preds, refs.Select(ImageCaptionGrammar.Parse).ToList()));
        o["per_kind"] = Counts(CaptionScorer.PerKind(preds, refs));
        o["examples"] = Examples(refs, preds, examples);
        return o;
    }

    /// <summary>Transcribes (ASR prompt) every utterance of an audio manifest with a <c>speech-stage2</c> model: WER after the English normaliser, with <paramref name="examples"/> reference/prediction pairs (−1: all).</summary>
    public static JsonObject Asr(string modelDir, string manifest, int? limit = null, int maxNewTokens = 200, int examples = DefaultExamples, int numBeams = 1)
    {
        var (model, tok) = SpeechSftRecipe.LoadTrained(modelDir);
        using var owned = model;
        model.eval();
        var (_, _, language, _) = MediaTokens.ReadInfo(modelDir);
        var records = JsonlManifest.ReadAudioTexts(manifest, false, out int _).Take(limit ?? int.MaxValue).ToList();
        using var logMel = new LogMelSpectrogram();
        var stop = new HashSet<int> { tok.EosId, tok.EotId };
        // KV-cached greedy decoding over the spliced prompt embeddings (the generator's tokenizer only names default stops,
        // which are given here, so a byte-level model gets the Llama 3 one).
        var gen = new TextGenerator(model.language_model, (tok as Llama3TrainingTokenizer)?.Inner ?? Llama3Tokenizer.Default);
        var preds = new List<string>();
        foreach (var r in records)
        {
            using var scope = NewDisposeScope();
            var f = logMel.Compute(AudioLoader.Load(r.Audio)).unsqueeze(0);
            Tensor speech;
            using (torch.no_grad()) speech = model.speech_model.Forward(f, torch.tensor(new long[] { f.shape[1] })).Embeddings;
            int span = (int)speech.shape[1];
            string system = r.Task == "ast" ? SpeechLanguageModel.AstPrompt(r.Language!) : SpeechLanguageModel.AsrPrompt(r.Language ?? language);
            var (prompt, offset) = SpeechSftRecipe.Prompt(tok, system, span);
            Tensor embeddings;
            using (torch.no_grad())
                embeddings = model.SpliceEmbeddings(torch.tensor(prompt.Select(i => (long)i).ToArray(), new long[] { 1, prompt.Count }), speech, new[] { offset }, new[] { span });
            var result = gen.Generate(prompt, Greedy(maxNewTokens, stop, numBeams), promptEmbeddings: embeddings);
            preds.Add(MediaTokens.Decode(tok, result.Tokens.ToList()).Trim());
        }
        var refs = records.Select(r => r.Text).ToList();
        var o = Header("asr", modelDir, manifest, records.Count);
        o["wer"] = WordErrorRate.Compute(refs, preds);
        o["examples"] = Examples(refs, preds, examples);
        return o;
    }

    /// <summary>Captions every clip of a video manifest with a <c>video</c> model: temporal-caption accuracy, the rate of
    /// time-reversed captions, and per-part accuracy (first subject's colour and shape, each event, the second subject), with
    /// <paramref name="examples"/> reference/prediction pairs (−1: all).</summary>
    public static JsonObject Video(string modelDir, string manifest, int? limit = null, int maxNewTokens = 160, int examples = DefaultExamples, int numBeams = 1)
    {
        var (_, tok, _, _) = MediaTokens.ReadInfo(modelDir);
        var records = JsonlManifest.ReadVideoCaptions(manifest, false, out _).Take(limit ?? int.MaxValue).ToList();
        using var model = VideoLanguageModel.FromPretrained(modelDir);
        model.eval();
        var stop = new HashSet<int> { tok.EosId, tok.EotId };
        var preds = new List<string>();
        foreach (var r in records)
        {
            using var scope = NewDisposeScope();
            using var frames = model.ReadFrames(r.Video);
            var result = model.Generate(MediaTokens.CaptionPrompt(tok, model.Config.Video.VideoTokenId), frames, Greedy(maxNewTokens, stop, numBeams));
            preds.Add(MediaTokens.Decode(tok, result.Tokens.ToList()).Trim());
        }
        var refs = records.Select(r => r.Caption).ToList();
        var o = Header("video", modelDir, manifest, records.Count);
        o["accuracy"] = VideoCaptionScorer.Accuracy(preds, refs);
        o["reversed_rate"] = VideoCaptionScorer.ReversedRate(preds, refs);
        o["per_part"] = Counts(VideoCaptionScorer.PerPart(preds, refs));
        o["examples"] = Examples(refs, preds, examples);
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
            acc[name] = new[] { 0.01, 1.0, 100.0 }.Max(l => LinearProbe.Fit(x, labels, VideoCaptionGrammar.Directions.Count, l).Test);
        o["direction_accuracy"] = acc;
        return o;
    }

    /// <summary>The 8 tokens of a frame [T, D] farthest from its mean token, averaged: a crude pooling over the moving object.</summary>
    static Tensor ObjectTokens(Tensor frame)
    {
        var far = (frame - frame.mean(new long[] { 0 }, keepdim: true)).norm(1);
        return frame.index_select(0, far.topk((int)Math.Min(8, frame.shape[0])).indexes).mean(new long[] { 0 });
    }
}

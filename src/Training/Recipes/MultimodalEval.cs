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
    /// <summary>Greedy continuation of <paramref name="prompt"/> until an end token or <paramref name="maxNew"/> tokens; <paramref name="logits"/> maps ids [1, L] to logits [1, L, V].</summary>
    public static List<int> Greedy(Func<Tensor, Tensor> logits, IReadOnlyList<int> prompt, int maxNew, ISet<int> stop)
    {
        var ids = prompt.ToList();
        var outIds = new List<int>();
        using var noGrad = torch.no_grad();
        for (int s = 0; s < maxNew; s++)
        {
            using var scope = NewDisposeScope();
            var t = torch.tensor(ids.Select(i => (long)i).ToArray(), new long[] { 1, ids.Count });
            int next = (int)logits(t)[0, -1].argmax().item<long>();
            if (stop.Contains(next)) break;
            ids.Add(next); outIds.Add(next);
        }
        return outIds;
    }

    /// <summary>Greedy decoding of at most <paramref name="maxNew"/> tokens, ending at any of <paramref name="stop"/> (the KV-cached generation path the models' own APIs use).</summary>
    static GenerationOptions Greedy(int maxNew, ISet<int> stop) => new() { MaxNewTokens = maxNew, Temperature = 0, StopTokens = stop.ToList() };

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
    /// Captions every image of an image+caption manifest with a <c>vision-stage1/2</c> model: caption exact match and
    /// per-attribute accuracy (references parsed with the caption grammar). <paramref name="examples"/> reference/prediction
    /// pairs are listed (−1: all).
    /// </summary>
    public static JsonObject Caption(string modelDir, string manifest, int? limit = null, int maxNewTokens = 128, int examples = DefaultExamples)
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
            var result = model.GenerateBatch(new[] { MediaTokens.CaptionPrompt(tok, imageTok) }, batch, Greedy(maxNewTokens, stop))[0];
            preds.Add(MediaTokens.Decode(tok, result.Tokens.ToList()).Trim());
        }
        var refs = records.Select(r => r.Caption).ToList();
        var o = Header("caption", modelDir, manifest, records.Count);
        o["exact_match"] = CaptionScorer.ExactMatch(preds, refs);
        o["per_attribute"] = Counts(CaptionScorer.PerAttribute(preds, refs.Select(ImageCaptionGrammar.Parse).ToList()));
        o["examples"] = Examples(refs, preds, examples);
        return o;
    }

    /// <summary>Transcribes (ASR prompt) every utterance of an audio manifest with a <c>speech-stage2</c> model: WER after the English normaliser, with <paramref name="examples"/> reference/prediction pairs (−1: all).</summary>
    public static JsonObject Asr(string modelDir, string manifest, int? limit = null, int maxNewTokens = 200, int examples = DefaultExamples)
    {
        var (model, tok) = SpeechSftRecipe.LoadTrained(modelDir);
        using var owned = model;
        model.eval();
        var (_, _, language, _) = MediaTokens.ReadInfo(modelDir);
        var records = JsonlManifest.ReadAudioTexts(manifest, false, out int _).Take(limit ?? int.MaxValue).ToList();
        using var logMel = new LogMelSpectrogram();
        var stop = new HashSet<int> { tok.EosId, tok.EotId };
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
            var ids = Greedy(t => model.language_model.ForwardEmbeddings(model.SpliceEmbeddings(t, speech, new[] { offset }, new[] { span })),
                prompt, maxNewTokens, stop);
            preds.Add(MediaTokens.Decode(tok, ids).Trim());
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
    public static JsonObject Video(string modelDir, string manifest, int? limit = null, int maxNewTokens = 160, int examples = DefaultExamples)
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
            var result = model.Generate(MediaTokens.CaptionPrompt(tok, model.Config.Video.VideoTokenId), frames, Greedy(maxNewTokens, stop));
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
}

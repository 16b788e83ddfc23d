using System.Text.Json.Nodes;
using Llama3.Multimodal.Speech;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Video;
using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// Held-out evaluation of models written by the multimodal recipes (<c>mm-train eval</c>): greedy decoding in each
/// recipe's own prompt format. Captions are scored by exact match after <see cref="NormalizeCaption"/>, transcripts by
/// word error rate after <see cref="EnglishNormalizer"/>. Results are JSON objects (scores + a few examples); the
/// prediction lists are public so that an application can add scores of its own.
/// </summary>
public static class MultimodalEval
{
    /// <summary>Greedy decoding (with <paramref name="beams"/> &gt; 1: beam search) of at most <paramref name="maxNew"/> tokens, ending at any of <paramref name="stop"/> (the KV-cached generation path the models' own APIs use).</summary>
    static GenerationOptions Greedy(int maxNew, ISet<int> stop, int beams) => new() { MaxNewTokens = maxNew, Temperature = 0, StopTokens = stop.ToList(), NumBeams = beams };

    /// <summary>How many reference/prediction pairs an evaluation lists when not told otherwise.</summary>
    public const int DefaultExamples = 5;

    /// <summary>
    /// A report: task, model, data, count and the first <paramref name="examples"/> reference/prediction pairs (−1: all),
    /// each with its media file's name (<c>input</c>) when <paramref name="inputs"/> are given.
    /// </summary>
    public static JsonObject Report(string task, string model, string data, IReadOnlyList<string> refs, IReadOnlyList<string> preds, int examples,
        IReadOnlyList<string>? inputs = null)
    {
        var o = Header(task, model, data, refs.Count);
        o["examples"] = Examples(inputs, refs, preds, examples);
        return o;
    }

    /// <summary>The per-name (correct, total, accuracy) counts as a JSON object.</summary>
    public static JsonObject Counts(IReadOnlyDictionary<string, (int Correct, int Total, double Accuracy)> scores)
    {
        var o = new JsonObject();
        foreach (var (name, v) in scores) o[name] = new JsonObject { ["correct"] = v.Correct, ["total"] = v.Total, ["accuracy"] = v.Accuracy };
        return o;
    }

    /// <summary>A caption as compared by <see cref="ExactMatch"/>: trimmed, white space collapsed, a final period, '!' or '?'
    /// dropped, lower-cased.</summary>
    public static string NormalizeCaption(string caption) =>
        System.Text.RegularExpressions.Regex.Replace(caption.Trim(), @"\s+", " ").TrimEnd('.', '!', '?').TrimEnd().ToLowerInvariant();

    /// <summary>Fraction of predictions equal to their reference after <see cref="NormalizeCaption"/>.</summary>
    public static double ExactMatch(IReadOnlyList<string> predictions, IReadOnlyList<string> references)
    {
        if (predictions.Count != references.Count) throw new ArgumentException($"{predictions.Count} predictions for {references.Count} references.");
        if (predictions.Count == 0) throw new ArgumentException("nothing to score.");
        return (double)predictions.Zip(references).Count(p => NormalizeCaption(p.First) == NormalizeCaption(p.Second)) / predictions.Count;
    }

    static JsonArray Examples(IReadOnlyList<string>? inputs, IReadOnlyList<string> refs, IReadOnlyList<string> preds, int n) =>
        new(Enumerable.Range(0, Math.Min(refs.Count, n < 0 ? int.MaxValue : n)).Select(i =>
        {
            var e = new JsonObject();
            if (inputs is not null) e["input"] = Path.GetFileName(inputs[i]);
            e["reference"] = refs[i];
            e["prediction"] = preds[i];
            return (JsonNode)e;
        }).ToArray());

    static JsonObject Header(string task, string model, string data, int count) =>
        new() { ["task"] = task, ["model"] = Path.GetFullPath(model), ["data"] = Path.GetFullPath(data), ["count"] = count };

    /// <summary>
    /// Captions every image of an image+caption source (a JSONL manifest, tar shards or Parquet, see
    /// <see cref="DataSources"/>; <paramref name="columns"/> names the image and text columns as <c>data.image_column</c>
    /// and <c>data.text_column</c> do) with a <c>vision-stage1/2</c> model: caption exact match (<see cref="ExactMatch"/>).
    /// <paramref name="examples"/> reference/prediction pairs are listed (−1: all); <paramref name="numBeams"/> &gt; 1
    /// decodes with beam search.
    /// </summary>
    public static JsonObject Caption(string modelDir, string manifest, int? limit = null, int maxNewTokens = 128, int examples = DefaultExamples, int numBeams = 1,
        DataSection? columns = null)
    {
        var records = Records(manifest, limit, m => JsonlManifest.ReadImageCaptions(m, false, out _), ShardRecords.ImageCaption, columns);
        var preds = CaptionPredictions(modelDir, records, maxNewTokens, numBeams);
        var refs = records.Select(r => r.Caption).ToList();
        var o = Report("caption", modelDir, manifest, refs, preds, examples, records.Select(r => r.Image).ToList());
        o["exact_match"] = ExactMatch(preds, refs);
        return o;
    }

    /// <summary>The greedy (or beam-search) captions of <paramref name="images"/> by the <c>vision-stage1/2</c> model in
    /// <paramref name="modelDir"/>, in its captioning prompt, images fitted to the tiles it was trained with.</summary>
    public static IReadOnlyList<string> CaptionPredictions(string modelDir, IReadOnlyList<string> images, int maxNewTokens = 128, int numBeams = 1) =>
        CaptionPredictions(modelDir, images.Select(p => (Func<RgbImage>)(() => ImageLoader.Load(p))).ToList(), maxNewTokens, numBeams);

    /// <summary>As <see cref="CaptionPredictions(string, IReadOnlyList{string}, int, int)"/> for records of any source
    /// (shard records carry their image bytes).</summary>
    public static IReadOnlyList<string> CaptionPredictions(string modelDir, IReadOnlyList<ImageCaptionRecord> records, int maxNewTokens = 128, int numBeams = 1) =>
        CaptionPredictions(modelDir, records.Select(r => (Func<RgbImage>)(() => RecordMedia.Image(r))).ToList(), maxNewTokens, numBeams);

    static IReadOnlyList<string> CaptionPredictions(string modelDir, IReadOnlyList<Func<RgbImage>> images, int maxNewTokens, int numBeams)
    {
        var (_, tok, _, maxTiles) = MediaTokens.ReadInfo(modelDir);
        using var model = VisionLanguageModel.FromPretrained(modelDir);
        model.eval();
        var pre = VisionRecipe.Preprocessor(model.Config.Vision, maxTiles);
        var stop = new HashSet<int> { tok.EosId, tok.EotId };
        int imageTok = model.Config.ImageTokenIndex;
        var preds = new List<string>();
        foreach (var image in images)
        {
            using var scope = NewDisposeScope();
            using var p = VisionRecipe.ProcessImage(pre, model.Preprocessor, image());
            using var batch = model.Preprocessor.Pack(new[] { (IReadOnlyList<ProcessedImage>)new[] { p } });
            var result = model.GenerateBatch(new[] { MediaTokens.CaptionPrompt(tok, imageTok) }, batch, Greedy(maxNewTokens, stop, numBeams))[0];
            preds.Add(MediaTokens.Decode(tok, result.Tokens.ToList()).Trim());
        }
        return preds;
    }

    /// <summary>The first <paramref name="limit"/> records of a manifest, or of tar shards / Parquet in stored order.</summary>
    static List<T> Records<T>(string data, int? limit, Func<string, List<T>> manifest, Func<ShardSample, DataSection, T> fromShard, DataSection? columns)
    {
        var (kind, files) = DataSources.Resolve(data);
        if (kind == DataSourceKind.Jsonl) return manifest(data).Take(limit ?? int.MaxValue).ToList();
        var list = new List<T>();
        foreach (var unit in DataSources.Units(kind, files))
            foreach (var s in unit.Read(0, CancellationToken.None))
            {
                if (list.Count >= (limit ?? int.MaxValue)) return list;
                try { list.Add(fromShard(s, columns ?? new DataSection())); }
                catch (FormatException e) { throw new DataFormatException($"{s.Where}: {e.Message}"); }
            }
        if (list.Count == 0) throw new DataFormatException($"{data}: no samples.");
        return list;
    }

    /// <summary>Transcribes (ASR prompt) every utterance of an audio source (manifest, shards or Parquet; <paramref name="columns"/>
    /// as <c>data.audio_column</c>/<c>data.text_column</c>) with a <c>speech-stage2</c> model: WER after the English
    /// normaliser, with <paramref name="examples"/> reference/prediction pairs (−1: all).</summary>
    public static JsonObject Asr(string modelDir, string manifest, int? limit = null, int maxNewTokens = 200, int examples = DefaultExamples, int numBeams = 1,
        DataSection? columns = null)
    {
        var (model, tok) = SpeechSftRecipe.LoadTrained(modelDir);
        using var owned = model;
        model.eval();
        var (_, _, language, _) = MediaTokens.ReadInfo(modelDir);
        var records = Records(manifest, limit, m => JsonlManifest.ReadAudioTexts(m, false, out int _), ShardRecords.AudioText, columns);
        using var logMel = new LogMelSpectrogram();
        var stop = new HashSet<int> { tok.EosId, tok.EotId };
        // KV-cached greedy decoding over the spliced prompt embeddings (the generator's tokenizer only names default stops,
        // which are given here, so a byte-level model gets the Llama 3 one).
        var gen = new TextGenerator(model.language_model, (tok as Llama3TrainingTokenizer)?.Inner ?? Llama3Tokenizer.Default);
        var preds = new List<string>();
        foreach (var r in records)
        {
            using var scope = NewDisposeScope();
            var f = logMel.Compute(RecordMedia.Audio(r)).unsqueeze(0);
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
        o["examples"] = Examples(records.Select(r => r.Audio).ToList(), refs, preds, examples);
        return o;
    }

    /// <summary>Captions every clip of a video source (manifest, shards or Parquet; <paramref name="columns"/> as
    /// <c>data.video_column</c>/<c>data.text_column</c>) with a <c>video</c> model: caption exact match
    /// (<see cref="ExactMatch"/>), with <paramref name="examples"/> reference/prediction pairs (−1: all).</summary>
    public static JsonObject Video(string modelDir, string manifest, int? limit = null, int maxNewTokens = 160, int examples = DefaultExamples, int numBeams = 1,
        DataSection? columns = null)
    {
        var records = Records(manifest, limit, m => JsonlManifest.ReadVideoCaptions(m, false, out _), ShardRecords.VideoCaption, columns);
        var preds = VideoPredictions(modelDir, records, maxNewTokens, numBeams);
        var refs = records.Select(r => r.Caption).ToList();
        var o = Report("video", modelDir, manifest, refs, preds, examples, records.Select(r => r.Video).ToList());
        o["exact_match"] = ExactMatch(preds, refs);
        return o;
    }

    /// <summary>The greedy (or beam-search) captions of the clips <paramref name="videos"/> by the <c>video</c> model in
    /// <paramref name="modelDir"/>.</summary>
    public static IReadOnlyList<string> VideoPredictions(string modelDir, IReadOnlyList<string> videos, int maxNewTokens = 160, int numBeams = 1) =>
        VideoPredictions(modelDir, videos.Select(p => (Func<VideoLanguageModel, VideoFrames>)(m => m.ReadFrames(p))).ToList(), maxNewTokens, numBeams);

    /// <summary>As <see cref="VideoPredictions(string, IReadOnlyList{string}, int, int)"/> for records of any source (shard
    /// records carry their clip's bytes, which ffmpeg reads from memory).</summary>
    public static IReadOnlyList<string> VideoPredictions(string modelDir, IReadOnlyList<VideoCaptionRecord> records, int maxNewTokens = 160, int numBeams = 1) =>
        VideoPredictions(modelDir, records.Select(r => (Func<VideoLanguageModel, VideoFrames>)(m => r.Data is null ? m.ReadFrames(r.Video) : RecordMedia.Frames(r, m.FrameSampling))).ToList(),
            maxNewTokens, numBeams);

    static IReadOnlyList<string> VideoPredictions(string modelDir, IReadOnlyList<Func<VideoLanguageModel, VideoFrames>> videos, int maxNewTokens, int numBeams)
    {
        var (_, tok, _, _) = MediaTokens.ReadInfo(modelDir);
        using var model = VideoLanguageModel.FromPretrained(modelDir);
        model.eval();
        var stop = new HashSet<int> { tok.EosId, tok.EotId };
        var preds = new List<string>();
        foreach (var read in videos)
        {
            using var scope = NewDisposeScope();
            using var frames = read(model);
            var result = model.Generate(MediaTokens.CaptionPrompt(tok, model.Config.Video.VideoTokenId), frames, Greedy(maxNewTokens, stop, numBeams));
            preds.Add(MediaTokens.Decode(tok, result.Tokens.ToList()).Trim());
        }
        return preds;
    }
}

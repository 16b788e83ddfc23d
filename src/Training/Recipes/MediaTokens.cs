using System.Text.Json.Nodes;
using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Training;

/// <summary>
/// Token ids and sequences shared by the multimodal recipes. With a training tokenizer of vocabulary V the image token is
/// the first extra embedding row (id V; 128256 = <c>&lt;|image|&gt;</c> for Llama 3) and the video token the second (V + 1;
/// 128257). The speech span is enclosed by <c>&lt;|reserved_special_token_10|&gt;</c>/<c>_11</c> (Llama 3) or the two
/// reserved ids 262/263 of the byte tokenizer.
/// </summary>
public static class MediaTokens
{
    /// <summary>Id of <c>&lt;|image|&gt;</c> for <paramref name="t"/>.</summary>
    public static int ImageTokenId(ITrainingTokenizer t) => t.VocabSize;

    /// <summary>Id of <c>&lt;|video|&gt;</c> for <paramref name="t"/>.</summary>
    public static int VideoTokenId(ITrainingTokenizer t) => t.VocabSize + 1;

    /// <summary>Ids that open and close the speech span for <paramref name="t"/>.</summary>
    public static (int Start, int End) SpeechTokens(ITrainingTokenizer t) => t switch
    {
        ByteTokenizer => (262, 263),
        Llama3TrainingTokenizer l => (l.Inner.SpecialId("<|reserved_special_token_10|>"), l.Inner.SpecialId("<|reserved_special_token_11|>")),
        _ => throw new ConfigException($"tokenizer {t.GetType().Name} has no speech tokens."),
    };

    /// <summary>
    /// The media-captioning sequence (completion format, as <c>VisionPrompt.EncodeCompletion</c>):
    /// <c>media · &lt;|begin_of_text|&gt; · caption · &lt;|end_of_text|&gt;</c>, truncated to <paramref name="seqLen"/>,
    /// with next-token labels on the caption tokens and the end token only (−100 elsewhere).
    /// </summary>
    public static (long[] Ids, long[] Labels) Caption(ITrainingTokenizer t, int mediaToken, string caption, int seqLen)
    {
        var ids = new List<int> { mediaToken, t.BosId };
        int firstTarget = ids.Count;
        ids.AddRange(t.Encode(caption.Trim()));
        ids.Add(t.EosId);
        int len = Math.Min(ids.Count, seqLen);
        var labels = new long[len];
        for (int i = 0; i < len; i++) labels[i] = i + 1 < len && i + 1 >= firstTarget ? ids[i + 1] : -100;
        return (ids.Take(len).Select(i => (long)i).ToArray(), labels);
    }

    /// <summary>Prompt ids of the captioning format: <c>media · &lt;|begin_of_text|&gt;</c>.</summary>
    public static List<int> CaptionPrompt(ITrainingTokenizer t, int mediaToken) => new() { mediaToken, t.BosId };

    /// <summary>Decodes ids to text (special tokens dropped).</summary>
    public static string Decode(ITrainingTokenizer t, IEnumerable<int> ids) => t.Decode(ids);

    /// <summary>File beside the weights naming the recipe and tokenizer a model folder was trained with.</summary>
    public const string InfoFile = "train_info.json";

    /// <summary>
    /// Writes <see cref="InfoFile"/> into <paramref name="directory"/>. A tokenizer given as a file is copied into the
    /// folder too (as <c>tokenizer.model</c>, or <c>tokenizer.json</c> for a Hugging Face tokenizer) and named relative to it,
    /// so that the folder loads on its own (the <c>mm</c> commands, the chat client, <c>mm-train average</c>).
    /// </summary>
    public static void WriteInfo(string directory, string recipe, TrainConfig config)
    {
        string tokenizer = config.Tokenizer;
        if (tokenizer is not ("llama3" or "bytes" or "") && File.Exists(tokenizer))
        {
            string name = tokenizer.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? "tokenizer.json" : "tokenizer.model";
            string target = Path.Combine(directory, name);
            if (!File.Exists(target) || !Path.GetFullPath(target).Equals(Path.GetFullPath(tokenizer), StringComparison.Ordinal))
                AtomicFile.WriteAllBytes(target, File.ReadAllBytes(tokenizer));
            tokenizer = name;
        }
        var o = new JsonObject { ["recipe"] = recipe, ["tokenizer"] = tokenizer, ["language"] = config.Speech?.Finetune?.Language ?? "English", ["max_tiles"] = config.Vision?.MaxTiles ?? 4 };
        AtomicFile.WriteAllText(Path.Combine(directory, InfoFile), o.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>Reads <see cref="InfoFile"/>: recipe, tokenizer and settings of a trained folder.</summary>
    public static (string Recipe, ITrainingTokenizer Tokenizer, string Language, int MaxTiles) ReadInfo(string directory)
    {
        string path = Path.Combine(directory, InfoFile);
        if (!File.Exists(path)) throw new CheckpointFormatException($"{directory}: {InfoFile} not found (not a folder written by an mm-train multimodal recipe).");
        JsonObject o;
        try { o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new CheckpointFormatException($"{path}: not a JSON object."); }
        catch (System.Text.Json.JsonException e) { throw new CheckpointFormatException($"{path}: invalid JSON: {e.Message}", e); }
        string Req(string k) => o[k]?.GetValue<string>() ?? throw new CheckpointFormatException($"{path}: missing \"{k}\".");
        // A tokenizer file named relative to the model folder travels with the folder (the shipped demo models).
        string tok = Req("tokenizer");
        if (tok is not ("bytes" or "llama3") && !Path.IsPathRooted(tok)) tok = Path.Combine(directory, tok);
        return (Req("recipe"), Llama3TrainingTokenizer.Resolve(tok), o["language"]?.GetValue<string>() ?? "English", o["max_tiles"]?.GetValue<int>() ?? 4);
    }
}

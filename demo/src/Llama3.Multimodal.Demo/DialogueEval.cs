using System.Text.Json.Nodes;
using Llama3.Multimodal.Vision;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Demo;

/// <summary>
/// Scores an instruction-following vision model on the demo's image dialogues (<c>mm-demo eval dialogue</c>) and
/// measures how its text-only answers compare with a text decoder's (<c>mm-demo eval repeat</c>). Prompts are laid out
/// as a chat client lays them out (<see cref="ChatFormat"/>, one <c>&lt;|image|&gt;</c> before the first user turn's
/// text), decoding is greedy.
/// </summary>
public static class DialogueEval
{
    /// <summary>One assistant turn to score: its dialogue's image, the messages before it, the reference and the type.</summary>
    public sealed record Turn(string Image, IReadOnlyList<ChatMessage> Prompt, string Reference, string Type);

    /// <summary>
    /// The assistant turns of a dialogue manifest (<see cref="DialogueDataMaker"/>'s layout, with its <c>labels.jsonl</c>
    /// beside it for the question types), each with the reference history before it.
    /// </summary>
    public static List<Turn> ReadTurns(string manifest, int? limit = null)
    {
        string dir = Path.GetDirectoryName(Path.GetFullPath(manifest))!, labelsPath = Path.Combine(dir, "labels.jsonl");
        if (!File.Exists(labelsPath)) throw new DataFormatException($"{manifest}: no labels.jsonl beside it (the question types of each turn).");
        var lines = File.ReadAllLines(manifest).Where(l => l.Trim().Length > 0).ToList();
        var labels = File.ReadAllLines(labelsPath).Where(l => l.Trim().Length > 0).ToList();
        if (labels.Count != lines.Count) throw new DataFormatException($"{labelsPath}: {labels.Count} records for {lines.Count} dialogues in {manifest}.");
        var turns = new List<Turn>();
        for (int i = 0; i < Math.Min(lines.Count, limit ?? int.MaxValue); i++)
        {
            string where = $"{manifest}:{i + 1}";
            var o = JsonNode.Parse(lines[i]) as JsonObject ?? throw new DataFormatException($"{where}: not a JSON object.");
            var images = o["images"] as JsonArray ?? throw new DataFormatException($"{where}: no \"images\" array.");
            if (images.Count != 1) throw new DataFormatException($"{where}: {images.Count} images; the demo dialogues have one.");
            string image = Path.GetFullPath(Path.Combine(dir, images[0]!.GetValue<string>()));
            var types = (JsonNode.Parse(labels[i])?["types"]?.GetValue<string>() ?? throw new DataFormatException($"{labelsPath}:{i + 1}: no \"types\"."))
                .Split(',');
            var messages = o["messages"] as JsonArray ?? throw new DataFormatException($"{where}: no \"messages\" array.");
            var history = new List<ChatMessage>();
            int k = 0;
            foreach (var m in messages)
            {
                string role = m?["role"]?.GetValue<string>() ?? throw new DataFormatException($"{where}: a message without \"role\".");
                string text = Content(m["content"], where);
                if (role == "assistant")
                {
                    if (k >= types.Length) throw new DataFormatException($"{labelsPath}:{i + 1}: {types.Length} types for more assistant turns.");
                    turns.Add(new Turn(image, history.ToList(), text, types[k++]));
                }
                history.Add(new ChatMessage(role, text));
            }
        }
        return turns;
    }

    // A message's text, with "<|image|>" where an image part stands (string content as it is).
    static string Content(JsonNode? content, string where) => content switch
    {
        JsonValue v => v.GetValue<string>(),
        JsonArray parts => string.Concat(parts.Select(p => p?["type"]?.GetValue<string>() switch
        {
            "image" => VisionPrompt.ImagePlaceholder,
            "text" => p["text"]?.GetValue<string>() ?? throw new DataFormatException($"{where}: a text part without \"text\"."),
            var t => throw new DataFormatException($"{where}: content part type '{t}' (image or text expected)."),
        })),
        _ => throw new DataFormatException($"{where}: a message without \"content\"."),
    };

    /// <summary>The model's greedy answers to <paramref name="turns"/>, <paramref name="batch"/> prompts at a time.</summary>
    public static List<string> Answers(VisionLanguageModel model, IReadOnlyList<Turn> turns, int maxNewTokens = 32, int batch = 8)
    {
        var tok = model.Tokenizer;
        var format = new ChatFormat(tok);
        var allowed = new Dictionary<string, int> { [VisionPrompt.ImagePlaceholder] = model.Config.ImageTokenIndex };
        var options = new GenerationOptions { MaxNewTokens = maxNewTokens, Temperature = 0, StopTokens = new List<int> { tok.EosId, tok.EotId } };
        var answers = new List<string>();
        var cache = new Dictionary<string, RgbImage>();
        for (int s = 0; s < turns.Count; s += batch)
        {
            using var scope = NewDisposeScope();
            var part = turns.Skip(s).Take(batch).ToList();
            var prompts = part.Select(t => (IReadOnlyList<int>)format.EncodeDialog(t.Prompt, true, allowed)).ToList();
            var images = part.Select(t =>
            {
                if (!cache.TryGetValue(t.Image, out var img)) cache[t.Image] = img = ImageLoader.Load(t.Image);
                return (IReadOnlyList<RgbImage>)new[] { img };
            }).ToList();
            foreach (var r in model.GenerateBatch(prompts, images, options)) answers.Add(r.Text.Trim());
            if (cache.Count > 64) cache.Clear();
        }
        return answers;
    }

    /// <summary>
    /// Answers every assistant turn of a dialogue manifest with the vision model in <paramref name="modelDir"/> (the
    /// reference turns before it as history) and scores it per question type: an answer is right when it equals the
    /// reference (<see cref="DialogueGrammar.Matches"/>). Lists <paramref name="examples"/> wrong answers (−1: every turn).
    /// </summary>
    public static JsonObject Dialogue(string modelDir, string manifest, int? limit = null, int examples = 8, int maxNewTokens = 32)
    {
        var turns = ReadTurns(manifest, limit);
        using var model = VisionLanguageModel.FromPretrained(modelDir);
        model.eval();
        var answers = Answers(model, turns, maxNewTokens);
        var o = new JsonObject
        {
            ["task"] = "dialogue", ["model"] = Path.GetFullPath(modelDir), ["data"] = Path.GetFullPath(manifest),
            ["dialogues"] = turns.Select(t => t.Image).Distinct().Count(), ["turns"] = turns.Count,
        };
        var per = new JsonObject();
        int right = 0;
        foreach (var type in DialogueGrammar.Types.Concat(turns.Select(t => t.Type)).Distinct())
        {
            var idx = Enumerable.Range(0, turns.Count).Where(i => turns[i].Type == type).ToList();
            if (idx.Count == 0) continue;
            int c = idx.Count(i => DialogueGrammar.Matches(answers[i], turns[i].Reference));
            right += c;
            per[type] = new JsonObject { ["correct"] = c, ["total"] = idx.Count, ["accuracy"] = (double)c / idx.Count };
        }
        o["accuracy"] = turns.Count == 0 ? 0 : (double)right / turns.Count;
        o["per_type"] = per;
        var list = new JsonArray();
        foreach (int i in Enumerable.Range(0, turns.Count).Where(i => examples < 0 || !DialogueGrammar.Matches(answers[i], turns[i].Reference)).Take(examples < 0 ? int.MaxValue : examples))
            list.Add(new JsonObject
            {
                ["image"] = Path.GetFileName(turns[i].Image), ["type"] = turns[i].Type, ["question"] = turns[i].Prompt[^1].Content.Replace(VisionPrompt.ImagePlaceholder, ""),
                ["reference"] = turns[i].Reference, ["prediction"] = answers[i], ["correct"] = DialogueGrammar.Matches(answers[i], turns[i].Reference),
            });
        o[examples < 0 ? "answers" : "wrong"] = list;
        return o;
    }

    /// <summary>
    /// Text-only answers of the vision model in <paramref name="modelDir"/> against those of the text decoder in
    /// <paramref name="textDir"/> on the user prompts of a chat manifest (e.g. <c>repeat-eval.jsonl</c>, "Repeat after
    /// me: …"): how many are identical, and how many of each repeat the user's words exactly (the reference answer). The
    /// text decoder reads its folder's tokenizer, or the vision model's when it has none. Lists the first
    /// <paramref name="examples"/> differing answers (−1: every answer pair).
    /// </summary>
    public static JsonObject Repeat(string modelDir, string textDir, string manifest, int? limit = null, int maxNewTokens = 48, int examples = 8)
    {
        var dialogs = JsonlManifest.ReadDialogs(manifest, false, out _).Take(limit ?? int.MaxValue).ToList();
        var prompts = dialogs.Select(d => d.Messages.TakeWhile(m => m.Role != "assistant").ToList()).ToList();
        var refs = dialogs.Select(d => d.Messages.FirstOrDefault(m => m.Role == "assistant")?.Content ?? "").ToList();
        using var vlm = VisionLanguageModel.FromPretrained(modelDir);
        using var lm = LlamaForCausalLM.FromPretrained(textDir);
        // A training checkpoint has no tokenizer file of its own: it shares the vision model's vocabulary.
        var textTok = Llama3Tokenizer.FromModelDirectory(textDir) ?? vlm.Tokenizer;
        var a = TextAnswers(vlm.language_model, vlm.Tokenizer, prompts, maxNewTokens);
        var b = TextAnswers(lm, textTok, prompts, maxNewTokens);
        int same = Enumerable.Range(0, a.Count).Count(i => a[i] == b[i]);
        var diffs = new JsonArray();
        foreach (int i in Enumerable.Range(0, a.Count).Where(i => examples < 0 || a[i] != b[i]).Take(examples < 0 ? int.MaxValue : examples))
            diffs.Add(new JsonObject { ["prompt"] = prompts[i][^1].Content, ["model"] = a[i], ["text_model"] = b[i] });
        return new JsonObject
        {
            ["task"] = "repeat", ["model"] = Path.GetFullPath(modelDir), ["text_model"] = Path.GetFullPath(textDir), ["data"] = Path.GetFullPath(manifest),
            ["count"] = a.Count, ["identical"] = same, ["changed"] = a.Count - same,
            ["model_exact"] = Enumerable.Range(0, a.Count).Count(i => a[i] == refs[i].Trim()),
            ["text_model_exact"] = Enumerable.Range(0, b.Count).Count(i => b[i] == refs[i].Trim()),
            [examples < 0 ? "answers" : "differences"] = diffs,
        };
    }

    static List<string> TextAnswers(LlamaForCausalLM lm, Llama3Tokenizer tok, List<List<ChatMessage>> prompts, int maxNewTokens)
    {
        var format = new ChatFormat(tok);
        var gen = new TextGenerator(lm, tok);
        var options = new GenerationOptions { MaxNewTokens = maxNewTokens, Temperature = 0, StopTokens = new List<int> { tok.EosId, tok.EotId } };
        var res = new List<string>();
        for (int s = 0; s < prompts.Count; s += 8)
        {
            using var scope = NewDisposeScope();
            var ids = prompts.Skip(s).Take(8).Select(p => (IReadOnlyList<int>)format.EncodeDialog(p)).ToList();
            res.AddRange(gen.GenerateBatch(ids, options).Select(r => r.Text.Trim()));
        }
        return res;
    }
}

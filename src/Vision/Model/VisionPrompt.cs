using System.Text.Json.Nodes;
using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Vision;

/// <summary>How a prompt is laid out for the model.</summary>
public enum VisionPromptFormat
{
    /// <summary>The Instruct chat format (user turn with the images, then the assistant header): instruction-tuned models.</summary>
    Instruct,
    /// <summary>Plain completion (<c>&lt;|image|&gt;&lt;|begin_of_text|&gt;</c> + text): base (pretrained) models, which continue the text.</summary>
    Completion,
}

/// <summary>Prompt encoding for Llama 3.2 Vision: the Instruct chat format with <c>&lt;|image|&gt;</c> = 128256, or plain completion.</summary>
public static class VisionPrompt
{
    /// <summary>Placeholder text of an image in prompts.</summary>
    public const string ImagePlaceholder = "<|image|>";

    /// <summary>
    /// Encodes a one-turn user prompt in the Instruct chat format, ending with the assistant header. If
    /// <paramref name="prompt"/> holds no <c>&lt;|image|&gt;</c> placeholder, one per image is put before the text;
    /// otherwise the placeholders must number <paramref name="imageCount"/>.
    /// </summary>
    public static List<int> EncodeInstruct(Llama3Tokenizer tokenizer, string prompt, int imageCount, int imageTokenId = 128256)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        int given = CountPlaceholders(prompt);
        if (given == 0) prompt = string.Concat(Enumerable.Repeat(ImagePlaceholder, imageCount)) + prompt;
        else if (given != imageCount)
            throw new ArgumentException($"the prompt holds {given} {ImagePlaceholder} placeholders but {imageCount} images were given.");
        return EncodeDialog(tokenizer, new[] { new ChatMessage("user", prompt) }, true, imageTokenId);
    }

    /// <summary>
    /// The Llama 3.2 Vision Instruct chat format of a dialog whose message contents hold <c>&lt;|image|&gt;</c>
    /// placeholders where the images go (as Hugging Face's chat template writes the content parts of a message in order:
    /// an image part as <c>&lt;|image|&gt;</c>, nothing added around it):
    /// <c>&lt;|begin_of_text|&gt;</c>, then per message <c>&lt;|start_header_id|&gt;role&lt;|end_header_id|&gt;\n\n</c>,
    /// the stripped content and <c>&lt;|eot_id|&gt;</c>; with <paramref name="addAssistantHeader"/> the assistant header
    /// follows. No system message is added. This is the one formatter of image chats: the chat client, the prompt-level
    /// API and the <c>vision-sft</c>/<c>vision-reward</c>/<c>vision-dpo</c> training recipes all encode with it.
    /// </summary>
    public static List<int> EncodeDialog(Llama3Tokenizer tokenizer, IEnumerable<ChatMessage> messages, bool addAssistantHeader = true, int imageTokenId = 128256) =>
        new ChatFormat(tokenizer).EncodeDialog(messages, addAssistantHeader, Placeholders(imageTokenId));

    /// <summary>The special strings an image chat's contents may hold: <c>&lt;|image|&gt;</c> → <paramref name="imageTokenId"/>.</summary>
    public static IReadOnlyDictionary<string, int> Placeholders(int imageTokenId = 128256) => new Dictionary<string, int> { [ImagePlaceholder] = imageTokenId };

    /// <summary>
    /// Encodes a base-model (completion) prompt as the Hugging Face Mllama processor does: images at the start of the
    /// prompt come before <c>&lt;|begin_of_text|&gt;</c> (<c>&lt;|image|&gt;&lt;|begin_of_text|&gt;If I had to write a haiku</c>),
    /// images placed later stay where they are. Without placeholders, one per image is put at the start.
    /// </summary>
    public static List<int> EncodeCompletion(Llama3Tokenizer tokenizer, string prompt, int imageCount, int imageTokenId = 128256)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        int given = CountPlaceholders(prompt);
        if (given == 0) prompt = string.Concat(Enumerable.Repeat(ImagePlaceholder, imageCount)) + prompt;
        else if (given != imageCount)
            throw new ArgumentException($"the prompt holds {given} {ImagePlaceholder} placeholders but {imageCount} images were given.");
        return EncodeMediaFirst(tokenizer, prompt, ImagePlaceholder, imageTokenId);
    }

    /// <summary>
    /// The completion layout for any media placeholder: the placeholders that open <paramref name="prompt"/> become
    /// <paramref name="tokenId"/> before <c>&lt;|begin_of_text|&gt;</c>; later ones stay in place as that token.
    /// </summary>
    public static List<int> EncodeMediaFirst(Llama3Tokenizer tokenizer, string prompt, string placeholder, int tokenId)
    {
        var ids = new List<int>();
        while (prompt.StartsWith(placeholder, StringComparison.Ordinal))
        {
            ids.Add(tokenId);
            prompt = prompt[placeholder.Length..];
        }
        ids.Add(tokenizer.BosId);
        ids.AddRange(new ChatFormat(tokenizer).EncodeContent(prompt, new Dictionary<string, int> { [placeholder] = tokenId }));
        return ids;
    }

    /// <summary>File of a model folder that stores the prompt format (beside the generation defaults).</summary>
    public const string GenerationConfigFile = "generation_config.json";

    /// <summary>
    /// The prompt format stored with a model folder: the <c>prompt_format</c> field (<c>"instruct"</c> or
    /// <c>"completion"</c>) of its <c>generation_config.json</c>; Instruct when the file or the field is absent (e.g. hub
    /// checkpoints of instruction-tuned models). Throws <see cref="CheckpointFormatException"/> naming the file for
    /// invalid JSON or an unknown value.
    /// </summary>
    public static VisionPromptFormat FormatOf(string directory)
    {
        string path = Path.Combine(directory, GenerationConfigFile);
        if (!File.Exists(path)) return VisionPromptFormat.Instruct;
        JsonObject? o;
        try { o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject; }
        catch (System.Text.Json.JsonException e) { throw new CheckpointFormatException($"{path}: invalid JSON: {e.Message}", e); }
        if (o is null) throw new CheckpointFormatException($"{path}: not a JSON object.");
        if (!o.TryGetPropertyValue(PromptFormatKey, out var v) || v is null) return VisionPromptFormat.Instruct;
        string? name = v is JsonValue jv && jv.TryGetValue<string>(out var str) ? str : null;
        return name switch
        {
            "instruct" => VisionPromptFormat.Instruct,
            "completion" => VisionPromptFormat.Completion,
            _ => throw new CheckpointFormatException($"{path}: {PromptFormatKey} is {v.ToJsonString()}; expected \"instruct\" or \"completion\"."),
        };
    }

    /// <summary>
    /// Stores <paramref name="format"/> as <c>prompt_format</c> in <paramref name="directory"/>'s
    /// <c>generation_config.json</c>, keeping the file's other fields; a new file also gets the token ids of
    /// <paramref name="text"/> (<c>bos_token_id</c>, <c>eos_token_id</c>, <c>pad_token_id</c>) when given. Written atomically.
    /// </summary>
    public static void WriteFormat(string directory, VisionPromptFormat format, LlamaConfig? text = null)
    {
        string path = Path.Combine(directory, GenerationConfigFile);
        JsonObject o;
        if (File.Exists(path))
        {
            try { o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new CheckpointFormatException($"{path}: not a JSON object."); }
            catch (System.Text.Json.JsonException e) { throw new CheckpointFormatException($"{path}: invalid JSON: {e.Message}", e); }
        }
        else
        {
            o = new JsonObject();
            if (text is not null)
            {
                o["bos_token_id"] = text.BosTokenId;
                o["eos_token_id"] = new JsonArray(text.EosTokenIds.Select(i => (JsonNode)JsonValue.Create(i)).ToArray());
                o["pad_token_id"] = text.PadTokenId;
            }
        }
        o[PromptFormatKey] = format == VisionPromptFormat.Completion ? "completion" : "instruct";
        AtomicFile.WriteAllText(path, o.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    }

    const string PromptFormatKey = "prompt_format";

    /// <summary>Encodes <paramref name="prompt"/> in <paramref name="format"/>.</summary>
    public static List<int> Encode(VisionPromptFormat format, Llama3Tokenizer tokenizer, string prompt, int imageCount, int imageTokenId = 128256) =>
        format == VisionPromptFormat.Completion
            ? EncodeCompletion(tokenizer, prompt, imageCount, imageTokenId)
            : EncodeInstruct(tokenizer, prompt, imageCount, imageTokenId);

    /// <summary>Decodes ids, writing <paramref name="imageTokenId"/> as <c>&lt;|image|&gt;</c> (or skipping it with the other specials).</summary>
    public static string Decode(Llama3Tokenizer tokenizer, IEnumerable<int> ids, bool skipSpecial = false, int imageTokenId = 128256)
    {
        var sb = new System.Text.StringBuilder();
        var run = new List<int>();
        foreach (int id in ids)
        {
            if (id == imageTokenId || id >= tokenizer.VocabSize)
            {
                sb.Append(tokenizer.Decode(run, skipSpecial));
                run.Clear();
                if (!skipSpecial) sb.Append(id == imageTokenId ? ImagePlaceholder : $"<|extra_{id}|>");
            }
            else run.Add(id);
        }
        sb.Append(tokenizer.Decode(run, skipSpecial));
        return sb.ToString();
    }

    static int CountPlaceholders(string s) => CountOf(s, ImagePlaceholder);

    /// <summary>Occurrences of <paramref name="placeholder"/> in <paramref name="s"/> (non-overlapping).</summary>
    public static int CountOf(string s, string placeholder)
    {
        int n = 0, i = 0;
        while ((i = s.IndexOf(placeholder, i, StringComparison.Ordinal)) >= 0) { n++; i += placeholder.Length; }
        return n;
    }
}

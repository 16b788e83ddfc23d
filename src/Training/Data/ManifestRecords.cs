using System.Text.Json.Nodes;
using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Training;

/// <summary>A text document for pretraining: <c>{"text": "..."}</c>.</summary>
/// <param name="Text">Document text (non-empty).</param>
public sealed record TextDocument(string Text);

/// <summary>An SFT dialog: <c>{"messages": [{"role", "content"}, ...]}</c> with at least one assistant message.</summary>
/// <param name="Messages">Messages in order.</param>
public sealed record DialogRecord(IReadOnlyList<ChatMessage> Messages);

/// <summary>A preference pair: <c>{"prompt", "chosen", "rejected", "edited"?}</c>; prompt is a string (one user turn) or a message list.</summary>
/// <param name="Prompt">Prompt messages.</param>
/// <param name="Chosen">Preferred response.</param>
/// <param name="Rejected">Dispreferred response.</param>
/// <param name="Edited">Optional human-edited response, preferred over both.</param>
public sealed record PreferenceRecord(IReadOnlyList<ChatMessage> Prompt, string Chosen, string Rejected, string? Edited);

/// <summary>An image with its caption: <c>{"image", "caption", "anchor"?}</c> (path relative to the manifest), or a shard
/// sample.</summary>
/// <param name="Image">Absolute image path; for a shard sample, where it sits (shard, key).</param>
/// <param name="Caption">Caption text.</param>
/// <param name="Anchor">The record opts in to the vision recipes' anchor loss (<c>vision.anchor_loss_weight</c>): its
/// image's cross-attention source is held to the reference model's. Default false.</param>
public sealed record ImageCaptionRecord(string Image, string Caption, bool Anchor = false)
{
    /// <summary>The encoded image of a shard sample (null: read <see cref="Image"/> from disk).</summary>
    public byte[]? Data { get; init; }
}

/// <summary>Audio with its transcript (ASR) or translation (AST): <c>{"audio", "text", "language"?, "task"?}</c>.</summary>
/// <param name="Audio">Absolute audio path.</param>
/// <param name="Text">Target text.</param>
/// <param name="Language">Language name of the target text, if given.</param>
/// <param name="Task"><c>asr</c> (default) or <c>ast</c>.</param>
public sealed record AudioTextRecord(string Audio, string Text, string? Language, string Task)
{
    /// <summary>The encoded audio of a shard sample (null: read <see cref="Audio"/> from disk); <see cref="Audio"/> then names the shard and key.</summary>
    public byte[]? Data { get; init; }
}

/// <summary>A video with its caption: <c>{"video", "caption"}</c>, or an image shown as a still clip: <c>{"image", "caption"}</c>.</summary>
/// <param name="Video">Absolute path of the video (or of the image when <paramref name="Still"/>).</param>
/// <param name="Caption">Caption text.</param>
/// <param name="Still">The path is an image whose every frame is that image.</param>
public sealed record VideoCaptionRecord(string Video, string Caption, bool Still = false)
{
    /// <summary>The encoded video (or still image) of a shard sample (null: read <see cref="Video"/> from disk); <see cref="Video"/> then names the shard and key.</summary>
    public byte[]? Data { get; init; }
}

/// <summary>
/// An image dialog for <c>vision-sft</c>: <c>{"images": ["a.png", ...], "messages": [...]}</c> (Llama 3.2 Vision Instruct
/// chat format). A message's content is a string or a list of Hugging Face content parts (<c>{"type": "image"}</c>,
/// <c>{"type": "text", "text": "..."}</c>); each image part (or <c>&lt;|image|&gt;</c> in a string) takes the next file of
/// <c>images</c>, in order.
/// </summary>
/// <param name="Images">Absolute image paths, in the order their <c>&lt;|image|&gt;</c> placeholders appear; for a shard
/// sample, where each image sits (shard, key, member).</param>
/// <param name="Messages">Messages in order; image parts are <c>&lt;|image|&gt;</c> placeholders in the content.</param>
public sealed record VisionDialogRecord(IReadOnlyList<string> Images, IReadOnlyList<ChatMessage> Messages)
{
    /// <summary>The encoded images of a shard sample, in <see cref="Images"/> order (null: read <see cref="Images"/> from disk).</summary>
    public IReadOnlyList<byte[]>? ImageData { get; init; }
}

/// <summary>
/// An image preference record for <c>vision-reward</c> and <c>vision-dpo</c>: the text preference record with the images
/// its prompt shows, <c>{"images": [...], "prompt": ..., "chosen": "...", "rejected": "...", "edited"?: "..."}</c>. The
/// prompt is a string (one user turn; without <c>&lt;|image|&gt;</c> in it the images come first, one placeholder each) or
/// a message list as in <see cref="VisionDialogRecord"/>.
/// </summary>
/// <param name="Images">Absolute image paths, in placeholder order; for a shard sample, where each image sits.</param>
/// <param name="Prompt">Prompt messages with <c>&lt;|image|&gt;</c> placeholders.</param>
/// <param name="Chosen">Preferred response.</param>
/// <param name="Rejected">Dispreferred response.</param>
/// <param name="Edited">Optional edited response, preferred over both (Llama 3 §4.1.2: edited &gt; chosen &gt; rejected).</param>
public sealed record VisionPreferenceRecord(IReadOnlyList<string> Images, IReadOnlyList<ChatMessage> Prompt, string Chosen, string Rejected, string? Edited)
{
    /// <summary>The encoded images of a shard sample, in <see cref="Images"/> order (null: read <see cref="Images"/> from disk).</summary>
    public IReadOnlyList<byte[]>? ImageData { get; init; }
}

/// <summary>Strict parsers of one manifest record each; they throw <see cref="FormatException"/> with what is wrong.</summary>
internal static class ManifestRecords
{
    static readonly HashSet<string> Roles = new(StringComparer.Ordinal) { "system", "user", "assistant", "ipython" };

    static void Keys(JsonObject o, params string[] allowed)
    {
        foreach (var k in o.Select(kv => kv.Key))
            if (!allowed.Contains(k)) throw new FormatException($"unknown field \"{k}\" (expected {string.Join(", ", allowed.Select(a => '"' + a + '"'))}).");
    }

    static string Str(JsonObject o, string key, bool required = true)
    {
        var n = o[key];
        if (n is null) return required ? throw new FormatException($"missing field \"{key}\".") : null!;
        if (n is not JsonValue v || !v.TryGetValue(out string? s)) throw new FormatException($"field \"{key}\" must be a string.");
        if (required && string.IsNullOrWhiteSpace(s)) throw new FormatException($"field \"{key}\" is empty.");
        return s;
    }

    static string FilePath(JsonObject o, string key, string dir)
    {
        string p = Str(o, key);
        string full = Path.GetFullPath(Path.IsPathRooted(p) ? p : Path.Combine(dir, p));
        if (!File.Exists(full)) throw new FormatException($"field \"{key}\": file '{p}' not found (resolved to {full}).");
        return full;
    }

    // Messages of {"role", "content"}. With imageParts, content may also be a list of HF content parts, whose image parts
    // become <|image|> placeholders (never in an assistant message); otherwise content is a string.
    internal static List<ChatMessage> Messages(JsonNode? n, string key, bool imageParts = false)
    {
        if (n is not JsonArray a || a.Count == 0) throw new FormatException($"field \"{key}\" must be a non-empty array of {{\"role\", \"content\"}}.");
        var list = new List<ChatMessage>();
        for (int i = 0; i < a.Count; i++)
        {
            if (a[i] is not JsonObject m) throw new FormatException($"{key}[{i}] must be an object.");
            try
            {
                Keys(m, "role", "content");
                string role = Str(m, "role");
                if (!Roles.Contains(role)) throw new FormatException($"role \"{role}\" is not one of system, user, assistant, ipython.");
                string content = m["content"] switch
                {
                    null => throw new FormatException("missing field \"content\"."),
                    JsonArray parts when imageParts => Parts(parts),
                    _ => Str(m, "content", required: false) ?? throw new FormatException("missing field \"content\"."),
                };
                if (imageParts && role == "assistant" && content.Contains(ImagePlaceholder, StringComparison.Ordinal))
                    throw new FormatException("an assistant message cannot hold an image.");
                list.Add(new ChatMessage(role, content));
            }
            catch (FormatException e) { throw new FormatException($"{key}[{i}]: {e.Message}"); }
        }
        return list;
    }

    const string ImagePlaceholder = Vision.VisionPrompt.ImagePlaceholder;

    static string Parts(JsonArray parts)
    {
        var sb = new System.Text.StringBuilder();
        for (int j = 0; j < parts.Count; j++)
        {
            if (parts[j] is not JsonObject p) throw new FormatException($"content[{j}] must be an object {{\"type\": \"image\"}} or {{\"type\": \"text\", \"text\": ...}}.");
            string type = p["type"] is JsonValue tv && tv.TryGetValue(out string? t) ? t : throw new FormatException($"content[{j}]: missing string field \"type\".");
            try
            {
                switch (type)
                {
                    case "image": Keys(p, "type"); sb.Append(ImagePlaceholder); break;
                    case "text": Keys(p, "type", "text"); sb.Append(Str(p, "text", required: false) ?? throw new FormatException("missing field \"text\".")); break;
                    default: throw new FormatException($"type \"{type}\" is not \"image\" or \"text\".");
                }
            }
            catch (FormatException e) { throw new FormatException($"content[{j}]: {e.Message}"); }
        }
        return sb.ToString();
    }

    internal static List<string> Images(JsonObject o, string dir)
    {
        if (o["images"] is not JsonArray a) throw new FormatException("missing field \"images\" (an array of image paths, relative to the manifest).");
        var list = new List<string>();
        for (int i = 0; i < a.Count; i++)
        {
            if (a[i] is not JsonValue v || !v.TryGetValue(out string? p) || string.IsNullOrWhiteSpace(p)) throw new FormatException($"images[{i}] must be a non-empty string (an image path).");
            string full = Path.GetFullPath(Path.IsPathRooted(p) ? p : Path.Combine(dir, p));
            if (!File.Exists(full)) throw new FormatException($"images[{i}]: file '{p}' not found (resolved to {full}).");
            list.Add(full);
        }
        return list;
    }

    static void CheckImageCount(IEnumerable<ChatMessage> messages, int images, string where)
    {
        int parts = messages.Sum(m => Vision.VisionPrompt.CountOf(m.Content, ImagePlaceholder));
        if (parts != images)
            throw new FormatException($"{where} hold{(where.EndsWith('s') ? "" : "s")} {parts} image part(s) but \"images\" lists {images} file(s); each image part takes the next file.");
    }

    public static VisionDialogRecord VisionDialog(JsonObject o, string dir)
    {
        Keys(o, "images", "messages", "reward");   // "reward": written by rejection sampling, informational
        return VisionDialog(o, Images(o, dir));
    }

    /// <summary>An image dialog whose images are <paramref name="images"/> (paths or shard member names; the fields other than "messages" are not read).</summary>
    public static VisionDialogRecord VisionDialog(JsonObject o, List<string> images)
    {
        var m = Messages(o["messages"], "messages", imageParts: true);
        if (!m.Any(x => x.Role == "assistant")) throw new FormatException("dialog has no assistant message to train on.");
        CheckImageCount(m, images.Count, "the messages");
        return new VisionDialogRecord(images, m);
    }

    /// <summary>The prompt of an image record: a string (one user turn; images first when it holds no placeholder) or a message list.</summary>
    internal static List<ChatMessage> PromptOf(JsonObject o, int images)
    {
        if (o["prompt"] is JsonArray) { var m = Messages(o["prompt"], "prompt", imageParts: true); CheckImageCount(m, images, "the prompt messages"); return m; }
        string text = Str(o, "prompt");
        if (Vision.VisionPrompt.CountOf(text, ImagePlaceholder) == 0) text = string.Concat(Enumerable.Repeat(ImagePlaceholder, images)) + text;
        var list = new List<ChatMessage> { new("user", text) };
        CheckImageCount(list, images, "the prompt");
        return list;
    }

    public static VisionPreferenceRecord VisionPreference(JsonObject o, string dir)
    {
        Keys(o, "images", "prompt", "chosen", "rejected", "edited");
        return VisionPreference(o, Images(o, dir));
    }

    /// <summary>An image preference record whose images are <paramref name="images"/> (the "images" field is not read).</summary>
    public static VisionPreferenceRecord VisionPreference(JsonObject o, List<string> images)
    {
        var prompt = PromptOf(o, images.Count);
        string chosen = Str(o, "chosen"), rejected = Str(o, "rejected");
        string? edited = o.ContainsKey("edited") ? Str(o, "edited") : null;
        if (chosen == rejected) throw new FormatException("\"chosen\" and \"rejected\" are identical.");
        if (new[] { chosen, rejected, edited }.Any(r => r?.Contains(ImagePlaceholder, StringComparison.Ordinal) == true)) throw new FormatException("a response cannot hold an image.");
        return new VisionPreferenceRecord(images, prompt, chosen, rejected, edited);
    }

    public static TextDocument Text(JsonObject o, string dir) { Keys(o, "text"); return new TextDocument(Str(o, "text")); }

    public static DialogRecord Dialog(JsonObject o, string dir)
    {
        Keys(o, "messages", "reward");   // "reward": written by rejection sampling, informational
        var m = Messages(o["messages"], "messages");
        if (!m.Any(x => x.Role == "assistant")) throw new FormatException("dialog has no assistant message to train on.");
        return new DialogRecord(m);
    }

    public static PreferenceRecord Preference(JsonObject o, string dir)
    {
        Keys(o, "prompt", "chosen", "rejected", "edited");
        List<ChatMessage> prompt = o["prompt"] is JsonArray ? Messages(o["prompt"], "prompt") : new() { new ChatMessage("user", Str(o, "prompt")) };
        string chosen = Str(o, "chosen"), rejected = Str(o, "rejected");
        string? edited = o.ContainsKey("edited") ? Str(o, "edited") : null;
        if (chosen == rejected) throw new FormatException("\"chosen\" and \"rejected\" are identical.");
        return new PreferenceRecord(prompt, chosen, rejected, edited);
    }

    public static ImageCaptionRecord ImageCaption(JsonObject o, string dir)
    {
        Keys(o, "image", "caption", "anchor");
        bool anchor = false;
        if (o["anchor"] is { } a && (a is not JsonValue av || !av.TryGetValue(out anchor))) throw new FormatException("field \"anchor\" must be true or false.");
        return new(FilePath(o, "image", dir), Str(o, "caption"), anchor);
    }

    public static AudioTextRecord AudioText(JsonObject o, string dir)
    {
        Keys(o, "audio", "text", "language", "task");
        string task = o.ContainsKey("task") ? Str(o, "task") : "asr";
        if (task is not ("asr" or "ast")) throw new FormatException($"field \"task\" = \"{task}\": expected \"asr\" or \"ast\".");
        string? lang = o.ContainsKey("language") ? Str(o, "language") : null;
        if (task == "ast" && lang is null) throw new FormatException("an \"ast\" record needs \"language\" (the target language).");
        return new(FilePath(o, "audio", dir), Str(o, "text"), lang, task);
    }

    public static VideoCaptionRecord VideoCaption(JsonObject o, string dir)
    {
        Keys(o, "video", "image", "caption");
        bool still = o.ContainsKey("image");
        if (still == o.ContainsKey("video")) throw new FormatException("a record needs exactly one of \"video\" and \"image\" (an image is a still clip).");
        return new(FilePath(o, still ? "image" : "video", dir), Str(o, "caption"), still);
    }
}

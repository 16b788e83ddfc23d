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

    static List<ChatMessage> Messages(JsonNode? n, string key)
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
                list.Add(new ChatMessage(role, Str(m, "content", required: false) ?? throw new FormatException("missing field \"content\".")));
            }
            catch (FormatException e) { throw new FormatException($"{key}[{i}]: {e.Message}"); }
        }
        return list;
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

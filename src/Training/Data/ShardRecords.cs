using System.Text.Json;
using System.Text.Json.Nodes;

namespace Llama3.Multimodal.Training;

/// <summary>
/// Turns shard samples into the recipes' records: the media member (by <c>data.image_column</c>/<c>audio_column</c>/
/// <c>video_column</c> or the defaults), the text (by <c>data.text_column</c> or the defaults, also inside a <c>json</c>
/// member), and for speech the <c>language</c>/<c>task</c> fields (a member or column of that name, or fields of the
/// <c>json</c> member). A sample that lacks what the recipe needs is a <see cref="FormatException"/> saying what is missing.
/// </summary>
public static class ShardRecords
{
    static readonly string[] ImageNames = { "image", "jpg", "jpeg", "png", "webp", "bmp", "gif" };
    static readonly string[] AudioNames = { "audio", "flac", "wav", "mp3", "ogg", "opus", "m4a" };
    static readonly string[] VideoNames = { "video", "mp4", "webm", "mkv", "mov", "avi" };
    static readonly string[] TextNames = { "text", "caption", "sentence", "transcription", "txt" };

    static (string Name, byte[] Data) Media(ShardSample s, string? configured, string[] defaults, string what)
    {
        if (configured is not null)
            return s.Member(configured) is { Length: > 0 } b ? (configured, b) : throw new FormatException($"no {what} member/column '{configured}' (has: {Has(s)}).");
        foreach (var n in defaults)
            if (s.Member(n) is { Length: > 0 } d) return (n, d);
        throw new FormatException($"no {what} (looked for {string.Join(", ", defaults)}; has: {Has(s)}).");
    }

    static string Has(ShardSample s) => s.Members.Count == 0 ? "nothing" : string.Join(", ", s.Members.Keys);

    static JsonObject? Json(ShardSample s)
    {
        if (s.Member("json") is not { } b) return null;
        try { return JsonNode.Parse(b) as JsonObject ?? throw new FormatException("the json member is not a JSON object."); }
        catch (JsonException e) { throw new FormatException($"the json member is not valid JSON ({e.Message})."); }
    }

    static string? JsonString(JsonObject? o, string key) =>
        o?[key] is JsonValue v && v.TryGetValue(out string? t) && !string.IsNullOrWhiteSpace(t) ? t.Trim() : null;

    /// <summary>The target text of <paramref name="s"/>.</summary>
    public static string Text(ShardSample s, string? configured)
    {
        var json = Json(s);
        if (configured is not null)
            return (s.Text(configured) is { Length: > 0 } c ? c : JsonString(json, configured))
                ?? throw new FormatException($"no text member/column '{configured}' (has: {Has(s)}).");
        foreach (var n in TextNames)
            if (s.Text(n) is { Length: > 0 } t) return t;
        foreach (var n in TextNames)
            if (JsonString(json, n) is { } t) return t;
        if (s.Text("cls") is { Length: > 0 } cls) return cls;
        throw new FormatException($"no text (looked for {string.Join(", ", TextNames)}, cls and the json member's fields; has: {Has(s)}).");
    }

    /// <summary>An image + caption record.</summary>
    public static ImageCaptionRecord ImageCaption(ShardSample s, DataSection d)
    {
        var (name, data) = Media(s, d.ImageColumn, ImageNames, "image");
        return new ImageCaptionRecord($"{s.Where} ({name})", Text(s, d.TextColumn)) { Data = data };
    }

    /// <summary>An audio + transcript/translation record; <c>language</c> and <c>task</c> as in a manifest record.</summary>
    public static AudioTextRecord AudioText(ShardSample s, DataSection d)
    {
        var (name, data) = Media(s, d.AudioColumn, AudioNames, "audio");
        var json = Json(s);
        string task = s.Text("task") is { Length: > 0 } tk ? tk : JsonString(json, "task") ?? "asr";
        if (task is not ("asr" or "ast")) throw new FormatException($"task \"{task}\": expected \"asr\" or \"ast\".");
        string? lang = s.Text("language") is { Length: > 0 } l ? l : JsonString(json, "language");
        if (task == "ast" && lang is null) throw new FormatException("an \"ast\" sample needs \"language\" (the target language).");
        return new AudioTextRecord($"{s.Where} ({name})", Text(s, d.TextColumn), lang, task) { Data = data };
    }

    /// <summary>A video + caption record; a sample with an image and no video is a still clip.</summary>
    public static VideoCaptionRecord VideoCaption(ShardSample s, DataSection d)
    {
        bool hasVideo = d.VideoColumn is not null || VideoNames.Any(n => s.Member(n) is { Length: > 0 });
        var (name, data) = hasVideo ? Media(s, d.VideoColumn, VideoNames, "video") : Media(s, d.ImageColumn, ImageNames, "video or image");
        return new VideoCaptionRecord($"{s.Where} ({name})", Text(s, d.TextColumn), Still: !hasVideo) { Data = data };
    }
}

/// <summary>
/// Text records from shard samples, for the text recipes: a <c>json</c> member holding the same object as a manifest
/// line, or members/columns named as the manifest's fields (a <c>messages</c> or <c>prompt</c> value that holds a JSON
/// array is read as a message list). The manifest's own checks apply.
/// </summary>
public static class ShardTextRecords
{
    static JsonObject Fields(ShardSample s, IReadOnlyList<string> fields, IReadOnlyDictionary<string, string>? renamed = null)
    {
        if (s.Member("json") is { } j)
        {
            try { return JsonNode.Parse(j, documentOptions: Text.LlamaConfigJson.DocumentOptions) as JsonObject ?? throw new FormatException("the json member is not a JSON object."); }
            catch (JsonException e) { throw new FormatException($"the json member is not valid JSON ({e.Message})."); }
        }
        var o = new JsonObject();
        foreach (var f in fields)
        {
            string name = renamed is not null && renamed.TryGetValue(f, out var r) ? r : f;
            if (s.Text(name) is not { } t) continue;
            if ((f is "messages" or "prompt") && t.StartsWith('['))
            {
                try { o[f] = JsonNode.Parse(t, documentOptions: Text.LlamaConfigJson.DocumentOptions); }
                catch (JsonException e) { throw new FormatException($"'{name}' is not a valid JSON message list ({e.Message})."); }
            }
            else o[f] = t;
        }
        if (o.Count == 0)
            throw new FormatException($"no json member and none of {string.Join(", ", fields.Select(f => renamed is not null && renamed.TryGetValue(f, out var r) ? r : f))} (has: {(s.Members.Count == 0 ? "nothing" : string.Join(", ", s.Members.Keys))}).");
        return o;
    }

    /// <summary>A pretraining document: the text (<c>data.text_column</c>, the default text names, or the json member's <c>text</c>).</summary>
    public static TextDocument Document(ShardSample s, DataSection d) => new(ShardRecords.Text(s, d.TextColumn));

    /// <summary>An SFT dialog: <c>messages</c> (or the column <c>data.text_column</c> names) as a JSON message list, or a json member.</summary>
    public static DialogRecord Dialog(ShardSample s, DataSection d) =>
        ManifestRecords.Dialog(Fields(s, new[] { "messages" }, d.TextColumn is { } c ? new Dictionary<string, string> { ["messages"] = c } : null), "");

    /// <summary>A preference pair: <c>prompt</c> (text or a JSON message list), <c>chosen</c>, <c>rejected</c> and optionally
    /// <c>edited</c> (the first three renamed by <c>data.prompt_column</c>, <c>chosen_column</c>, <c>rejected_column</c>), or a json member.</summary>
    public static PreferenceRecord Preference(ShardSample s, DataSection d)
    {
        var renamed = new Dictionary<string, string>();
        if (d.PromptColumn is { } p) renamed["prompt"] = p;
        if (d.ChosenColumn is { } c) renamed["chosen"] = c;
        if (d.RejectedColumn is { } r) renamed["rejected"] = r;
        return ManifestRecords.Preference(Fields(s, new[] { "prompt", "chosen", "rejected", "edited" }, renamed), "");
    }
}

/// <summary>Decodes a record's media from its shard bytes or, for a manifest record, from its file.</summary>
public static class RecordMedia
{
    /// <summary>The record's image, decoded.</summary>
    public static Vision.RgbImage Image(ImageCaptionRecord r) => r.Data is { } d ? Vision.ImageLoader.Decode(d, r.Image) : Vision.ImageLoader.Load(r.Image);
    /// <summary>The images of an image dialogue or preference record, decoded from their shard bytes or read from their files.</summary>
    public static List<Vision.RgbImage> Images(IReadOnlyList<string> images, IReadOnlyList<byte[]>? data) =>
        data is null ? images.Select(p => Vision.ImageLoader.Load(p)).ToList() : images.Select((n, i) => Vision.ImageLoader.Decode(data[i], n)).ToList();
    /// <summary>The record's audio as 16 kHz mono samples.</summary>
    public static float[] Audio(AudioTextRecord r) => r.Data is { } d ? Speech.AudioLoader.Load(d, r.Audio) : Speech.AudioLoader.Load(r.Audio);
    /// <summary>The image of a still-clip record, decoded.</summary>
    public static Vision.RgbImage Still(VideoCaptionRecord r) => r.Data is { } d ? Vision.ImageLoader.Decode(d, r.Video) : Vision.ImageLoader.Load(r.Video);

    /// <summary>The record's sampled frames; shard bytes are handed to ffmpeg as an in-memory file (see <see cref="Text.InMemoryFile"/>).</summary>
    public static Video.VideoFrames Frames(VideoCaptionRecord r, Video.FrameSamplingOptions options)
    {
        if (r.Data is null) return Video.VideoFrameReader.Read(r.Video, options);
        using var file = new Text.InMemoryFile(r.Data, "mp4");
        try { return Video.VideoFrameReader.Read(file.Path, options); }
        catch (Text.MediaDecodeException e) { throw new Text.MediaDecodeException(r.Video, e.Message.Replace(file.Path, "(in memory)"), e); }
    }
}

using System.Text.Json.Nodes;

namespace Llama3.Multimodal.Demo;

/// <summary>Reads the <c>labels.jsonl</c> files the makers write (paths resolved against the file's folder), for
/// evaluation. A bad record is a <see cref="DataFormatException"/> naming <c>file:line</c>.</summary>
public static class SyntheticLabels
{
    /// <summary>Image labels.</summary>
    public static List<ImageLabel> ReadImages(string path) => JsonlManifest.Read(path, (o, dir) =>
        new ImageLabel(FilePath(o, "image", dir), Str(o, "caption")!,
            new ImageAttributes(Str(o, "kind")!, Str(o, "shape", false), Str(o, "colour", false), Str(o, "size", false), Str(o, "position", false),
                Str(o, "count", false), Str(o, "shape2", false), Str(o, "colour2", false), Str(o, "text", false)),
            Str(o, "background")!), skipBad: false, out _);

    /// <summary>Speech labels.</summary>
    public static List<SpeechLabel> ReadSpeech(string path) => JsonlManifest.Read(path, (o, dir) =>
        new SpeechLabel(FilePath(o, "audio", dir), Str(o, "text")!, Str(o, "voice")!, Int(o, "speed"), Int(o, "pitch")), skipBad: false, out _);

    /// <summary>Video labels.</summary>
    public static List<VideoLabel> ReadVideos(string path) => JsonlManifest.Read(path, (o, dir) =>
        new VideoLabel(FilePath(o, "video", dir), Str(o, "caption")!, Int(o, "frames"), Int(o, "fps")), skipBad: false, out _);

    static string? Str(JsonObject o, string key, bool required = true)
    {
        var n = o[key];
        if (n is null) return required ? throw new FormatException($"missing field \"{key}\".") : null;
        if (n is not JsonValue v || !v.TryGetValue(out string? s)) throw new FormatException($"field \"{key}\" must be a string.");
        return s;
    }

    static int Int(JsonObject o, string key) =>
        o[key] is JsonValue v && v.TryGetValue(out int i) ? i : throw new FormatException($"field \"{key}\" must be an integer.");

    static string FilePath(JsonObject o, string key, string dir)
    {
        string p = Str(o, key)!;
        string full = Path.GetFullPath(Path.IsPathRooted(p) ? p : Path.Combine(dir, p));
        if (!File.Exists(full)) throw new FormatException($"field \"{key}\": file '{p}' not found (resolved to {full}).");
        return full;
    }
}

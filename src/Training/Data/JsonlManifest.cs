using System.Text.Json;
using System.Text.Json.Nodes;

namespace Llama3.Multimodal.Training;

/// <summary>
/// Reads a JSONL manifest (one JSON object per line, blank lines ignored) with strict per-record validation. A bad
/// record is a <see cref="DataFormatException"/> naming <c>file:line</c>, or — with <c>skipBad</c> — skipped and counted.
/// </summary>
public static class JsonlManifest
{
    /// <summary>Reads and validates every record; <paramref name="skipped"/> counts records skipped as bad.</summary>
    public static List<T> Read<T>(string path, Func<JsonObject, string, T> parse, bool skipBad, out int skipped)
    {
        if (!File.Exists(path)) throw new DataFormatException($"{path}: manifest not found.");
        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var list = new List<T>();
        skipped = 0;
        int lineNo = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                JsonNode? n;
                try
                {
                    n = JsonNode.Parse(line, documentOptions: Text.LlamaConfigJson.DocumentOptions);
                    // JsonNode builds objects lazily: a duplicate key surfaces on first access, so access it here.
                    Text.LlamaConfigJson.Materialise(n);
                }
                catch (Exception e) when (e is JsonException or ArgumentException or InvalidOperationException)
                {
                    throw new FormatException($"invalid JSON: {e.Message}");
                }
                if (n is not JsonObject o) throw new FormatException("a record must be a JSON object.");
                list.Add(parse(o, dir));
            }
            catch (FormatException e)
            {
                if (!skipBad) throw new DataFormatException($"{path}:{lineNo}: {e.Message}");
                skipped++;
            }
        }
        if (list.Count == 0) throw new DataFormatException($"{path}: no usable records{(skipped > 0 ? $" ({skipped} skipped as bad)" : "")}.");
        return list;
    }

    /// <summary>Text documents (<c>{"text"}</c>).</summary>
    public static List<TextDocument> ReadText(string path, bool skipBad, out int skipped) => Read(path, ManifestRecords.Text, skipBad, out skipped);
    /// <summary>SFT dialogs (<c>{"messages"}</c>).</summary>
    public static List<DialogRecord> ReadDialogs(string path, bool skipBad, out int skipped) => Read(path, ManifestRecords.Dialog, skipBad, out skipped);
    /// <summary>Preference pairs (<c>{"prompt","chosen","rejected","edited"?}</c>).</summary>
    public static List<PreferenceRecord> ReadPreferences(string path, bool skipBad, out int skipped) => Read(path, ManifestRecords.Preference, skipBad, out skipped);
    /// <summary>Image dialogs (<c>{"images", "messages"}</c>) for <c>vision-sft</c>.</summary>
    public static List<VisionDialogRecord> ReadVisionDialogs(string path, bool skipBad, out int skipped) => Read(path, ManifestRecords.VisionDialog, skipBad, out skipped);
    /// <summary>Image preference records (<c>{"images", "prompt", "chosen", "rejected", "edited"?}</c>) for <c>vision-reward</c> and <c>vision-dpo</c>.</summary>
    public static List<VisionPreferenceRecord> ReadVisionPreferences(string path, bool skipBad, out int skipped) => Read(path, ManifestRecords.VisionPreference, skipBad, out skipped);
    /// <summary>Image + caption records.</summary>
    public static List<ImageCaptionRecord> ReadImageCaptions(string path, bool skipBad, out int skipped) => Read(path, ManifestRecords.ImageCaption, skipBad, out skipped);
    /// <summary>Audio + transcript/translation records.</summary>
    public static List<AudioTextRecord> ReadAudioTexts(string path, bool skipBad, out int skipped) => Read(path, ManifestRecords.AudioText, skipBad, out skipped);
    /// <summary>Video + caption records.</summary>
    public static List<VideoCaptionRecord> ReadVideoCaptions(string path, bool skipBad, out int skipped) => Read(path, ManifestRecords.VideoCaption, skipBad, out skipped);
}

using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Llama3.Multimodal.Training;

/// <summary>
/// Image dialogues and image preference records from shard samples, for <c>vision-sft</c>, <c>vision-reward</c> and
/// <c>vision-dpo</c>. The text fields are those of a manifest line: in a WebDataset sample a <c>json</c> member holding
/// <c>messages</c> (or <c>prompt</c>, <c>chosen</c>, <c>rejected</c>, <c>edited</c>); in Parquet, columns of those names
/// (<c>data.text_column</c> renames <c>messages</c>, <c>data.prompt_column</c>/<c>chosen_column</c>/<c>rejected_column</c>
/// rename the preference fields; a prompt falls back to <c>question</c>), each a string or a message list (HF chat
/// <c>list&lt;struct&lt;content, role&gt;&gt;</c> with content parts; a chosen/rejected message list gives its assistant
/// text). The images, in placeholder order, are: in a WebDataset sample the members the <c>json</c> member's
/// <c>images</c> array names (<c>"0.png"</c> or <c>"KEY.0.png"</c>), else the numbered members <c>KEY.0.png</c>,
/// <c>KEY.1.jpg</c>, … by number, else one plain image member (<c>KEY.jpg</c>); in Parquet the <c>images</c> column (HF
/// <c>Sequence(Image)</c>: a list of {bytes, path} structs, or a list of binaries) or a single <c>image</c> column
/// (<c>data.image_column</c> names another). A sample that lacks what the recipe needs is a <see cref="FormatException"/>
/// saying what is missing.
/// </summary>
public static class ShardVisionRecords
{
    static readonly string[] ImageExtensions = { "jpg", "jpeg", "png", "webp", "bmp", "gif" };
    static readonly Regex Numbered = new(@"^(\d+)\.([a-z0-9]+)$", RegexOptions.CultureInvariant);

    /// <summary>An image dialogue (<see cref="VisionDialogRecord"/>).</summary>
    public static VisionDialogRecord Dialog(ShardSample s, DataSection d)
    {
        var (o, named) = Fields(s, new[] { ("messages", d.TextColumn, (string?)null) });
        var (names, data) = Images(s, d, named);
        return ManifestRecords.VisionDialog(o, names) with { ImageData = data };
    }

    /// <summary>An image preference record (<see cref="VisionPreferenceRecord"/>).</summary>
    public static VisionPreferenceRecord Preference(ShardSample s, DataSection d)
    {
        var (o, named) = Fields(s, new[]
        {
            ("prompt", d.PromptColumn, "question"), ("chosen", d.ChosenColumn, null), ("rejected", d.RejectedColumn, null), ("edited", null, null),
        });
        foreach (var k in new[] { "chosen", "rejected", "edited" })
            if (o[k] is JsonArray list) o[k] = ResponseText(list, k);
        var (names, data) = Images(s, d, named);
        return ManifestRecords.VisionPreference(o, names) with { ImageData = data };
    }

    // The record's fields: the json member (its "images" array, if any, names the image members), or the columns.
    static (JsonObject Fields, List<string>? ImageMembers) Fields(ShardSample s, (string Field, string? Column, string? Fallback)[] fields)
    {
        JsonObject o;
        List<string>? named = null;
        if (s.Member("json") is { } j)
        {
            try { o = JsonNode.Parse(j, documentOptions: Text.LlamaConfigJson.DocumentOptions) as JsonObject ?? throw new FormatException("the json member is not a JSON object."); }
            catch (JsonException e) { throw new FormatException($"the json member is not valid JSON ({e.Message})."); }
            if (o["images"] is JsonArray a)
            {
                named = a.Select((n, i) => n is JsonValue v && v.TryGetValue(out string? t) && t.Length > 0 ? t : throw new FormatException($"json images[{i}] must be a member name (e.g. \"0.png\").")).ToList();
                o.Remove("images");
            }
            else if (o.ContainsKey("images")) throw new FormatException("the json member's \"images\" must be an array of member names.");
            o.Remove("reward");
        }
        else
        {
            o = new JsonObject();
            foreach (var (field, column, fallback) in fields)
            {
                string? name = column ?? (s.Member(field) is not null || fallback is null ? field : fallback);
                if (s.Text(name) is not { Length: > 0 } t)
                {
                    if (column is not null) throw new FormatException($"no member/column '{column}' (has: {Has(s)}).");
                    continue;
                }
                if (t.StartsWith('['))
                {
                    try { o[field] = JsonNode.Parse(t, documentOptions: Text.LlamaConfigJson.DocumentOptions); }
                    catch (JsonException e) when (field is "messages" or "prompt") { throw new FormatException($"'{name}' is not a valid JSON message list ({e.Message})."); }
                    catch (JsonException) { o[field] = t; }   // a response that merely starts with '['
                }
                else o[field] = t;
            }
            if (o.Count == 0)
                throw new FormatException($"no json member and none of {string.Join(", ", fields.Select(f => f.Column ?? f.Field))} (has: {Has(s)}).");
        }
        foreach (var (field, _, _) in fields)
            if (o[field] is JsonArray list) Clean(list);
        return (o, named);
    }

    static string Has(ShardSample s) => s.Members.Count == 0 ? "nothing" : string.Join(", ", s.Members.Keys);

    // Parquet gives every struct field of every row (null where unset), and HF content parts may carry an "index" or the
    // image itself: nulls are dropped and an image part keeps only its type (image parts take the images in order).
    static void Clean(JsonArray messages)
    {
        foreach (var m in messages.OfType<JsonObject>())
        {
            DropNulls(m);
            if (m["content"] is not JsonArray parts) continue;
            foreach (var p in parts.OfType<JsonObject>())
            {
                DropNulls(p);
                if (p["type"] is JsonValue tv && tv.TryGetValue(out string? type) && type == "image")
                    foreach (var extra in new[] { "index", "image", "path", "url" }) p.Remove(extra);
            }
        }
    }

    static void DropNulls(JsonObject o)
    {
        foreach (var k in o.Where(kv => kv.Value is null).Select(kv => kv.Key).ToList()) o.Remove(k);
    }

    // A response given as a message list (e.g. [{"role": "assistant", "content": [{"type": "text", "text": "..."}]}]): its text.
    static string ResponseText(JsonArray list, string key)
    {
        var m = ManifestRecords.Messages(list, key, imageParts: true);
        if (m.Any(x => x.Role != "assistant")) throw new FormatException($"\"{key}\" as a message list must hold assistant messages only.");
        return string.Concat(m.Select(x => x.Content));
    }

    static (List<string> Names, List<byte[]> Data) Images(ShardSample s, DataSection d, List<string>? named)
    {
        var names = new List<string>();
        var data = new List<byte[]>();
        void Add(string member, byte[] bytes) { names.Add($"{s.Where} ({member})"); data.Add(bytes); }
        if (named is not null)
        {
            foreach (var n in named)
            {
                string member = n.StartsWith(KeyName(s) + ".", StringComparison.Ordinal) ? n[(KeyName(s).Length + 1)..] : n;
                if (s.Member(member) is not { Length: > 0 } b) throw new FormatException($"the json member names image '{n}', which the sample does not hold (has: {Has(s)}).");
                Add(member, b);
            }
            return (names, data);
        }
        if (d.ImageColumn is { } column)
        {
            if (s.Member(column) is not { Length: > 0 } b) throw new FormatException($"no image member/column '{column}' (has: {Has(s)}).");
            AddColumn(column, b, Add);
            return (names, data);
        }
        var numbered = s.Members.Keys.Select(k => (Key: k, M: Numbered.Match(k)))
            .Where(x => x.M.Success && ImageExtensions.Contains(x.M.Groups[2].Value))
            .Select(x => (x.Key, N: long.Parse(x.M.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))).OrderBy(x => x.N).ToList();
        if (numbered.Count > 0)
        {
            for (int i = 0; i < numbered.Count; i++)
                if (numbered[i].N != i) throw new FormatException($"image members must be numbered 0, 1, 2, …: found {string.Join(", ", numbered.Select(x => x.Key))}.");
            foreach (var (k, _) in numbered) Add(k, s.Member(k)!);
            return (names, data);
        }
        foreach (var n in new[] { "images", "image" }.Concat(ImageExtensions))
            if (s.Member(n) is { Length: > 0 } b) { AddColumn(n, b, Add); return (names, data); }
        return (names, data);   // no images: a text-only dialogue (its messages must then hold no image part)
    }

    static string KeyName(ShardSample s) => s.Key[(s.Key.LastIndexOf('/') + 1)..];

    // A member or column holding one encoded image, or (an HF Sequence(Image) column read as JSON) a list of them.
    static void AddColumn(string name, byte[] b, Action<string, byte[]> add)
    {
        if (b[0] != (byte)'[') { add(name, b); return; }
        JsonArray list;
        try { list = JsonNode.Parse(b) as JsonArray ?? throw new FormatException($"'{name}' is not a list of images."); }
        catch (JsonException e) { throw new FormatException($"'{name}' is neither an image nor a JSON list of images ({e.Message})."); }
        for (int i = 0; i < list.Count; i++)
        {
            JsonNode? bytes = list[i] is JsonObject o ? o["bytes"] : list[i];
            if (bytes is not JsonValue v || !v.TryGetValue(out string? b64) || b64.Length == 0)
                throw new FormatException($"{name}[{i}] holds no image bytes{(list[i] is JsonObject p && p["path"] is { } path ? $" (only the path {path.ToJsonString()}, which a shard cannot resolve)" : "")}.");
            byte[] image;
            try { image = Convert.FromBase64String(b64); }
            catch (FormatException) { throw new FormatException($"{name}[{i}]: the image bytes are not binary data."); }
            add($"{name}[{i}]", image);
        }
    }
}

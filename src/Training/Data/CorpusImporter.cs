using System.Formats.Tar;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Llama3.Multimodal.Training;

/// <summary>What an import wrote.</summary>
/// <param name="Records">Records written.</param>
/// <param name="Skipped">Source entries skipped (e.g. a transcript line whose audio file is missing), each named in <paramref name="Notes"/>.</param>
/// <param name="Outputs">The manifest, or the shard files, written.</param>
/// <param name="Notes">Why entries were skipped (at most 20 lines).</param>
public sealed record ImportResult(int Records, int Skipped, IReadOnlyList<string> Outputs, IReadOnlyList<string> Notes);

/// <summary>Options of an import.</summary>
public sealed record ImportOptions
{
    /// <summary>Write WebDataset tar shards (<c>shard-000000.tar</c>, …) instead of a JSONL manifest.</summary>
    public bool Shards { get; init; }
    /// <summary>Samples per shard; default 1000.</summary>
    public int ShardSize { get; init; } = 1000;
    /// <summary>Only the first N records (null: all).</summary>
    public int? Limit { get; init; }
    /// <summary>Speech: the language name of the transcripts written into each record (null: the corpus's own, e.g. English for LibriSpeech, the locale's name for Common Voice).</summary>
    public string? Language { get; init; }
    /// <summary>Common Voice: the TSV to read (<c>train</c>, <c>dev</c>, <c>test</c>, <c>validated</c>, …); COCO: the split (<c>train2017</c>, <c>val2017</c>).</summary>
    public string? Split { get; init; }
    /// <summary>COCO: keep only the first caption of each image (default: every caption is a record).</summary>
    public bool FirstCaptionOnly { get; init; }
}

/// <summary>
/// Writes the records of standard corpora in their published layouts as manifests (or WebDataset shards) for the speech
/// and caption recipes: LibriSpeech (<c>SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac</c> with
/// <c>SPEAKER-CHAPTER.trans.txt</c>), Common Voice (<c>clips/*.mp3</c> with <c>train.tsv</c>/<c>validated.tsv</c>, …)
/// and COCO captions (<c>annotations/captions_SPLIT.json</c> with the <c>SPLIT/</c> image folder). Speech records carry
/// <c>language</c> and <c>task</c> (<c>asr</c>). A manifest names the media by paths relative to itself (nothing is copied);
/// shards hold the media bytes. Files are written to a temporary name, then renamed.
/// </summary>
public static class CorpusImporter
{
    /// <summary>The corpora <see cref="Import"/> knows.</summary>
    public static IReadOnlyList<string> Corpora { get; } = new[] { "librispeech", "common-voice", "coco" };

    /// <summary>Imports <paramref name="corpus"/> from <paramref name="source"/> into <paramref name="outDir"/>.</summary>
    public static ImportResult Import(string corpus, string source, string outDir, ImportOptions? options = null)
    {
        options ??= new ImportOptions();
        if (options.ShardSize < 1) throw new ArgumentOutOfRangeException(nameof(options), $"shard size {options.ShardSize} must be ≥ 1.");
        if (!Directory.Exists(source)) throw new DataFormatException($"{source}: corpus folder not found.");
        var notes = new List<string>();
        int skipped = 0;
        void Skip(string why) { skipped++; if (notes.Count < 20) notes.Add(why); }
        IEnumerable<Entry> entries = corpus switch
        {
            "librispeech" => LibriSpeech(source, options, Skip),
            "common-voice" => CommonVoice(source, options, Skip),
            "coco" => Coco(source, options, Skip),
            _ => throw new DataFormatException($"unknown corpus '{corpus}' (expected {string.Join(", ", Corpora)})."),
        };
        if (options.Limit is int n) entries = entries.Take(n);
        Directory.CreateDirectory(outDir);
        var (count, outputs) = options.Shards ? WriteShards(entries, outDir, options.ShardSize) : WriteManifest(entries, outDir);
        if (count == 0) throw new DataFormatException($"{source}: no records found in the {corpus} layout{(notes.Count > 0 ? $" ({notes[0]})" : "")}.");
        return new ImportResult(count, skipped, outputs, notes);
    }

    /// <summary>One record: its media file, the fields of the manifest record, and the text that goes into a shard's txt.</summary>
    sealed record Entry(string Key, string Media, string MediaField, string Text, string TextField, string? Language);

    static IEnumerable<Entry> LibriSpeech(string root, ImportOptions o, Action<string> skip)
    {
        var transcripts = Directory.GetFiles(root, "*.trans.txt", SearchOption.AllDirectories).OrderBy(f => f, StringComparer.Ordinal).ToList();
        if (transcripts.Count == 0) throw new DataFormatException($"{root}: no SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt files (the LibriSpeech layout).");
        foreach (var t in transcripts)
        {
            string dir = Path.GetDirectoryName(t)!;
            int lineNo = 0;
            foreach (var line in File.ReadLines(t))
            {
                lineNo++;
                if (string.IsNullOrWhiteSpace(line)) continue;
                int sp = line.IndexOf(' ');
                if (sp <= 0) { skip($"{t}:{lineNo}: expected 'SPEAKER-CHAPTER-UTT TRANSCRIPT'."); continue; }
                string id = line[..sp], text = line[(sp + 1)..].Trim();
                string audio = Path.Combine(dir, id + ".flac");
                if (!File.Exists(audio)) { skip($"{t}:{lineNo}: {id}.flac not found."); continue; }
                if (text.Length == 0) { skip($"{t}:{lineNo}: empty transcript."); continue; }
                yield return new Entry(id, audio, "audio", text, "text", o.Language ?? "English");
            }
        }
    }

    /// <summary>Language names of common Common Voice locales (the name goes into the ASR prompt).</summary>
    static readonly Dictionary<string, string> Locales = new(StringComparer.OrdinalIgnoreCase)
    {
        ["en"] = "English", ["de"] = "German", ["fr"] = "French", ["es"] = "Spanish", ["it"] = "Italian", ["pt"] = "Portuguese",
        ["nl"] = "Dutch", ["pl"] = "Polish", ["ru"] = "Russian", ["uk"] = "Ukrainian", ["ca"] = "Catalan", ["eu"] = "Basque",
        ["ja"] = "Japanese", ["zh-CN"] = "Chinese", ["zh-TW"] = "Chinese", ["ko"] = "Korean", ["ar"] = "Arabic", ["fa"] = "Persian",
        ["tr"] = "Turkish", ["sv-SE"] = "Swedish", ["cs"] = "Czech", ["hi"] = "Hindi", ["th"] = "Thai", ["vi"] = "Vietnamese",
        ["id"] = "Indonesian", ["el"] = "Greek", ["hu"] = "Hungarian", ["ro"] = "Romanian", ["fi"] = "Finnish", ["da"] = "Danish",
    };

    static IEnumerable<Entry> CommonVoice(string root, ImportOptions o, Action<string> skip)
    {
        string split = o.Split ?? "train";
        string tsv = Path.Combine(root, split + ".tsv");
        if (!File.Exists(tsv)) throw new DataFormatException($"{tsv}: not found (the Common Voice layout: clips/ with train.tsv, dev.tsv, test.tsv, validated.tsv, … in the language folder).");
        string clips = Path.Combine(root, "clips");
        using var reader = new StreamReader(tsv, Encoding.UTF8);
        string? header = reader.ReadLine();
        if (header is null) throw new DataFormatException($"{tsv}: empty file.");
        var cols = header.Split('\t');
        int path = Array.IndexOf(cols, "path"), sentence = Array.IndexOf(cols, "sentence"), locale = Array.IndexOf(cols, "locale");
        if (path < 0 || sentence < 0) throw new DataFormatException($"{tsv}: the header needs 'path' and 'sentence' columns (has: {string.Join(", ", cols)}).");
        int lineNo = 1;
        for (string? line; (line = reader.ReadLine()) is not null;)
        {
            lineNo++;
            if (line.Length == 0) continue;
            var f = line.Split('\t');
            if (f.Length <= Math.Max(path, sentence)) { skip($"{tsv}:{lineNo}: {f.Length} columns, the header has {cols.Length}."); continue; }
            string clip = Path.Combine(clips, f[path]);
            if (!File.Exists(clip)) { skip($"{tsv}:{lineNo}: clips/{f[path]} not found."); continue; }
            string text = f[sentence].Trim();
            if (text.Length == 0) { skip($"{tsv}:{lineNo}: empty sentence."); continue; }
            string? loc = locale >= 0 && locale < f.Length && f[locale].Length > 0 ? f[locale] : Path.GetFileName(Path.GetFullPath(root).TrimEnd('/'));
            string lang = o.Language ?? (loc is not null && Locales.TryGetValue(loc, out var name) ? name
                : throw new DataFormatException($"{tsv}:{lineNo}: locale '{loc}' has no language name here; pass --language NAME."));
            yield return new Entry(Path.GetFileNameWithoutExtension(f[path]), clip, "audio", text, "text", lang);
        }
    }

    static IEnumerable<Entry> Coco(string root, ImportOptions o, Action<string> skip)
    {
        string split = o.Split ?? "train2017";
        string ann = Path.Combine(root, "annotations", $"captions_{split}.json");
        if (!File.Exists(ann)) throw new DataFormatException($"{ann}: not found (the COCO layout: annotations/captions_{split}.json beside the {split}/ image folder).");
        JsonObject doc;
        try { doc = JsonNode.Parse(File.ReadAllText(ann)) as JsonObject ?? throw new DataFormatException($"{ann}: not a JSON object."); }
        catch (JsonException e) { throw new DataFormatException($"{ann}: invalid JSON ({e.Message}).", e); }
        if (doc["images"] is not JsonArray images || doc["annotations"] is not JsonArray annotations)
            throw new DataFormatException($"{ann}: needs \"images\" and \"annotations\" arrays.");
        var files = new Dictionary<long, string>();
        foreach (var im in images.OfType<JsonObject>())
            if (im["id"]?.GetValue<long>() is long id && im["file_name"]?.GetValue<string>() is { } name) files[id] = name;
        string folder = Path.Combine(root, split);
        var seen = new HashSet<long>();
        foreach (var a in annotations.OfType<JsonObject>().OrderBy(a => a["image_id"]?.GetValue<long>() ?? 0).ThenBy(a => a["id"]?.GetValue<long>() ?? 0))
        {
            long imageId = a["image_id"]?.GetValue<long>() ?? -1, annId = a["id"]?.GetValue<long>() ?? -1;
            string caption = (a["caption"]?.GetValue<string>() ?? "").Trim();
            if (!files.TryGetValue(imageId, out var file)) { skip($"{ann}: annotation {annId}: image_id {imageId} is not in \"images\"."); continue; }
            if (caption.Length == 0) { skip($"{ann}: annotation {annId}: empty caption."); continue; }
            string image = Path.Combine(folder, file);
            if (!File.Exists(image)) { skip($"{ann}: annotation {annId}: {split}/{file} not found."); continue; }
            if (o.FirstCaptionOnly && !seen.Add(imageId)) continue;
            yield return new Entry($"{imageId:D12}-{annId}", image, "image", caption, "caption", null);
        }
    }

    static (int, IReadOnlyList<string>) WriteManifest(IEnumerable<Entry> entries, string outDir)
    {
        string path = Path.Combine(outDir, "manifest.jsonl"), tmp = path + ".tmp";
        int n = 0;
        using (var w = new StreamWriter(tmp, false, new UTF8Encoding(false)))
            foreach (var e in entries)
            {
                var o = new JsonObject { [e.MediaField] = Path.GetRelativePath(outDir, e.Media).Replace('\\', '/'), [e.TextField] = e.Text };
                if (e.Language is not null) { o["language"] = e.Language; o["task"] = "asr"; }
                w.Write(o.ToJsonString());
                w.Write('\n');
                n++;
            }
        File.Move(tmp, path, overwrite: true);
        return (n, new[] { path });
    }

    static (int, IReadOnlyList<string>) WriteShards(IEnumerable<Entry> entries, string outDir, int size)
    {
        var outputs = new List<string>();
        int n = 0;
        FileStream? file = null;
        TarWriter? tar = null;
        string? tmp = null;
        void Close()
        {
            if (tar is null) return;
            tar.Dispose(); file!.Dispose();
            string final = tmp![..^4];
            File.Move(tmp, final, overwrite: true);
            outputs.Add(final);
            tar = null;
        }
        void Add(string name, byte[] data)
        {
            var e = new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(data), ModificationTime = DateTimeOffset.UnixEpoch };
            tar!.WriteEntry(e);
        }
        try
        {
            foreach (var e in entries)
            {
                if (n % size == 0)
                {
                    Close();
                    tmp = Path.Combine(outDir, $"shard-{outputs.Count:D6}.tar.tmp");
                    file = new FileStream(tmp, FileMode.Create, FileAccess.Write);
                    tar = new TarWriter(file, TarEntryFormat.Pax, leaveOpen: false);
                }
                string key = e.Key.Replace('.', '_');
                Add($"{key}.{Path.GetExtension(e.Media).TrimStart('.').ToLowerInvariant()}", File.ReadAllBytes(e.Media));
                Add($"{key}.txt", Encoding.UTF8.GetBytes(e.Text));
                if (e.Language is not null)
                    Add($"{key}.json", Encoding.UTF8.GetBytes(new JsonObject { ["language"] = e.Language, ["task"] = "asr" }.ToJsonString()));
                n++;
            }
            Close();
        }
        finally { tar?.Dispose(); file?.Dispose(); }
        return (n, outputs);
    }
}

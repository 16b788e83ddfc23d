using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Llama3.Multimodal.Demo;

/// <summary>
/// Training sets made of other sets: an image mix of several made parts (<c>mm-demo make-data mix</c>), manifests
/// concatenated (<c>mm-demo concat</c>), and the demo's text corpus grown by the captions and transcripts of its
/// media sets (<c>mm-demo make-data corpus</c>).
/// </summary>
public static class DemoManifests
{
    static readonly string[] MediaKeys = { "image", "video", "audio" };

    /// <summary>One part of an image mix: a made set of <paramref name="Count"/> images of side <paramref name="Size"/>.</summary>
    /// <param name="Seed">Its seed (its evaluation set: seed + 1).</param>
    /// <param name="Size">Image side in pixels.</param>
    /// <param name="Count">Training images.</param>
    /// <param name="Kinds">Scene kinds (null: all).</param>
    public sealed record MixPart(int Seed, int Size, int Count, IReadOnlyList<string>? Kinds)
    {
        /// <summary>Parses <c>SEED:SIDE:COUNT[:KINDS]</c> (KINDS comma-separated or <c>all</c>).</summary>
        public static MixPart Parse(string spec)
        {
            var f = spec.Split(':');
            int Int(int i, string what) => int.TryParse(f[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v > 0 ? v
                : throw new ConfigException($"mix part '{spec}': {what} '{f[i]}' is not a positive integer (expected SEED:SIDE:COUNT[:KINDS]).");
            if (f.Length is < 3 or > 4) throw new ConfigException($"mix part '{spec}': expected SEED:SIDE:COUNT[:KINDS].");
            var kinds = f.Length == 4 && f[3] != "all" ? f[3].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : null;
            return new MixPart(Int(0, "seed"), Int(1, "side"), Int(2, "count"), kinds);
        }
    }

    /// <summary>
    /// Makes every part into <c>DIR/pSEED</c> (training, evaluation and, for shape kinds, held-out sets, as
    /// <c>make-data images</c>) and writes <c>DIR/mix.jsonl</c>: the parts' training records in the order given, image
    /// paths relative to <paramref name="dir"/>. Returns the mix manifest's path.
    /// </summary>
    public static string MakeImageMix(string dir, IReadOnlyList<MixPart> parts, int evalCount)
    {
        if (parts.Count == 0) throw new ConfigException("make-data mix: give at least one --part SEED:SIDE:COUNT[:KINDS].");
        var dup = parts.GroupBy(p => p.Seed).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new ConfigException($"make-data mix: seed {dup.Key} is used by two parts.");
        Directory.CreateDirectory(dir);
        var manifests = new List<string>();
        foreach (var p in parts)
        {
            string partDir = Path.Combine(dir, $"p{p.Seed}");
            DemoData.Write("images", partDir, p.Seed, p.Count, evalCount, p.Size, p.Kinds);
            manifests.Add(Path.Combine(partDir, "images", "manifest.jsonl"));
        }
        string mix = Path.Combine(dir, "mix.jsonl");
        Concat(mix, manifests.Select(m => new ManifestSlice(m, 0, null)).ToList());
        return mix;
    }

    /// <summary>Records <see cref="Skip"/> … <see cref="Skip"/> + <see cref="Take"/> − 1 of a manifest (all from <see cref="Skip"/> on when <see cref="Take"/> is null).</summary>
    /// <param name="Path">The manifest.</param>
    /// <param name="Skip">Records left out at its start.</param>
    /// <param name="Take">Records taken, or null for the rest.</param>
    public sealed record ManifestSlice(string Path, int Skip, int? Take)
    {
        /// <summary>Parses <c>MANIFEST</c>, <c>MANIFEST:N</c> (the first N records) or <c>MANIFEST:A-B</c> (records A to B − 1).</summary>
        public static ManifestSlice Parse(string arg)
        {
            int colon = arg.LastIndexOf(':');
            if (colon <= 0) return new ManifestSlice(arg, 0, null);
            string spec = arg[(colon + 1)..];
            var range = spec.Split('-');
            static bool Nat(string x, out int v) => int.TryParse(x, NumberStyles.None, CultureInfo.InvariantCulture, out v);
            if (range.Length == 1 && Nat(range[0], out int n)) return new ManifestSlice(arg[..colon], 0, n);
            if (range.Length == 2 && Nat(range[0], out int a) && Nat(range[1], out int b) && b >= a) return new ManifestSlice(arg[..colon], a, b - a);
            throw new ConfigException($"'{arg}': expected MANIFEST, MANIFEST:N or MANIFEST:A-B (A ≤ B).");
        }
    }

    /// <summary>
    /// Writes <paramref name="outFile"/>: the records of each input slice in order, their media paths (<c>image</c>,
    /// <c>video</c>, <c>audio</c>, and each of a dialogue record's <c>images</c>) made relative to the output's folder, then shuffled with <paramref name="shuffleSeed"/>
    /// when one is given. Returns the number of records.
    /// </summary>
    public static int Concat(string outFile, IReadOnlyList<ManifestSlice> inputs, int? shuffleSeed = null)
    {
        if (inputs.Count == 0) throw new ConfigException("concat: give at least one manifest.");
        string outDir = Path.GetDirectoryName(Path.GetFullPath(outFile))!;
        Directory.CreateDirectory(outDir);
        var lines = new List<string>();
        foreach (var (input, skip, take) in inputs)
        {
            if (!File.Exists(input)) throw new DataFormatException($"{input}: manifest not found.");
            string inDir = Path.GetDirectoryName(Path.GetFullPath(input))!;
            int n = 0, lineNo = 0, record = 0;
            foreach (var line in File.ReadLines(input))
            {
                lineNo++;
                if (string.IsNullOrWhiteSpace(line)) continue;
                if (record++ < skip) continue;
                if (take is int t && n >= t) break;
                JsonObject rec;
                try { rec = JsonNode.Parse(line) as JsonObject ?? throw new DataFormatException($"{input}:{lineNo}: not a JSON object."); }
                catch (JsonException e) { throw new DataFormatException($"{input}:{lineNo}: invalid JSON: {e.Message}", e); }
                string Rebase(string p) => Path.GetRelativePath(outDir, Path.IsPathRooted(p) ? p : Path.GetFullPath(Path.Combine(inDir, p)));
                foreach (var key in MediaKeys)
                    if (rec[key] is JsonValue v && v.TryGetValue<string>(out var p))
                        rec[key] = Rebase(p);
                if (rec["images"] is JsonArray images)   // dialogue records: {"images": [...], "messages": [...]}
                    for (int i = 0; i < images.Count; i++)
                        if (images[i] is JsonValue iv && iv.TryGetValue<string>(out var ip))
                            images[i] = Rebase(ip);
                lines.Add(rec.ToJsonString());
                n++;
            }
            if (take is int want && n < want) throw new DataFormatException($"{input}: {skip + n} records, fewer than the {skip + want} asked for.");
        }
        if (shuffleSeed is int seed)
        {
            var rng = new Random(seed);
            for (int i = lines.Count - 1; i > 0; i--) { int j = rng.Next(i + 1); (lines[i], lines[j]) = (lines[j], lines[i]); }
        }
        AtomicFile.WriteAllText(outFile, string.Concat(lines.Select(l => l + "\n")));
        return lines.Count;
    }

    /// <summary>
    /// The decoder's corpus of the staged pipeline: <c>text.jsonl</c> and <c>chat.jsonl</c> of <paramref name="textDir"/>
    /// (a <c>make-data text</c> folder), plus, in <paramref name="outDir"/>, the captions and transcripts of the media
    /// training sets (at most <paramref name="cap"/> of each; images, videos, then speech) as text records, and as
    /// "Repeat after me" dialogs (the transcripts twice, then the captions) in the chat set. The frozen decoder of the
    /// multimodal stages thus knows the language the adapters must make it speak, and after SFT repeats the user's words
    /// after the ASR system prompt. Returns the two files.
    /// </summary>
    public static (string Text, string Chat) Corpus(string outDir, string textDir, string? images, string? videos, string? speech, int cap)
    {
        if (cap < 1) throw new ConfigException($"corpus --cap {cap}: expected ≥ 1.");
        Directory.CreateDirectory(outDir);
        List<string> Texts(string? manifest, string key)
        {
            if (manifest is null) return new List<string>();
            if (!File.Exists(manifest)) throw new DataFormatException($"{manifest}: manifest not found.");
            return File.ReadLines(manifest).Where(l => !string.IsNullOrWhiteSpace(l)).Take(cap).Select((l, i) =>
                JsonNode.Parse(l)?[key]?.GetValue<string>() ?? throw new DataFormatException($"{manifest}:{i + 1}: no \"{key}\".")).ToList();
        }
        var (img, vid, sp) = (Texts(images, "caption"), Texts(videos, "caption"), Texts(speech, "text"));
        string Read(string name)
        {
            string p = Path.Combine(textDir, name);
            return File.Exists(p) ? File.ReadAllText(p) : throw new DataFormatException($"{p}: not found (expected a make-data text folder).");
        }
        static string Line(JsonNode n) => n.ToJsonString() + "\n";
        string text = Read("text.jsonl") + string.Concat(img.Concat(vid).Concat(sp).Select(t => Line(new JsonObject { ["text"] = t })));
        static JsonObject Repeat(string t) => new()
        {
            ["messages"] = new JsonArray(
                new JsonObject { ["role"] = "system", ["content"] = "Repeat after me in English:" },
                new JsonObject { ["role"] = "user", ["content"] = t },
                new JsonObject { ["role"] = "assistant", ["content"] = t }),
        };
        string chat = Read("chat.jsonl") + string.Concat(sp.Concat(sp).Concat(img).Concat(vid).Select(t => Line(Repeat(t))));
        string tp = Path.Combine(outDir, "text.jsonl"), cp = Path.Combine(outDir, "chat.jsonl");
        AtomicFile.WriteAllText(tp, text);
        AtomicFile.WriteAllText(cp, chat);
        return (tp, cp);
    }
}

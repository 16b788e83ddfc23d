using System.Diagnostics;
using System.Formats.Tar;
using System.Text;
using System.Text.Json.Nodes;
using Parquet;
using Parquet.Schema;
using SkiaSharp;

namespace Llama3.Multimodal.Training.Tests.Data;

/// <summary>
/// Tiny corpora in the exact published layouts, made from real media: speech spoken by espeak-ng and encoded by ffmpeg
/// (FLAC for LibriSpeech, MP3 for Common Voice), PNG/JPEG images drawn with SkiaSharp for COCO, tar shards with
/// <see cref="TarWriter"/> and Parquet files with Parquet.Net.
/// </summary>
internal static class Corpora
{
    public static readonly string[] Sentences = { "the red ball", "a blue cup", "one green box", "the small dog", "two big cats", "a yellow sun" };

    static void Run(string exe, params string[] args)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process p;
        try { p = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e) { throw new InvalidOperationException($"{exe} is needed by this test (apt-get install espeak-ng ffmpeg): {e.Message}", e); }
        using (p)
        {
            string err = p.StandardError.ReadToEnd();
            p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0) throw new InvalidOperationException($"{exe} {string.Join(' ', args)} failed: {err}");
        }
    }

    /// <summary>Speaks <paramref name="text"/> with espeak-ng and encodes it with ffmpeg to <paramref name="path"/> (format by extension).</summary>
    public static void Speak(string text, string path)
    {
        string wav = path + ".wav";
        Run("espeak-ng", "-v", "en-us", "-s", "190", "-w", wav, text);
        Run("ffmpeg", "-v", "error", "-y", "-i", wav, "-ar", "16000", "-ac", "1", path);
        File.Delete(wav);
    }

    /// <summary>LibriSpeech layout: SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac + SPEAKER-CHAPTER.trans.txt (upper-case transcripts).</summary>
    public static string LibriSpeech(string root, int speakers = 2, int perChapter = 3)
    {
        int k = 0;
        for (int s = 0; s < speakers; s++)
        {
            string speaker = (19 + s * 7).ToString(), chapter = (198 + s).ToString();
            string dir = Path.Combine(root, "LibriSpeech", "dev-clean", speaker, chapter);
            Directory.CreateDirectory(dir);
            var lines = new StringBuilder();
            for (int u = 0; u < perChapter; u++, k++)
            {
                string id = $"{speaker}-{chapter}-{u:D4}", text = Sentences[k % Sentences.Length];
                Speak(text, Path.Combine(dir, id + ".flac"));
                lines.Append(id).Append(' ').Append(text.ToUpperInvariant()).Append('\n');
            }
            File.WriteAllText(Path.Combine(dir, $"{speaker}-{chapter}.trans.txt"), lines.ToString());
        }
        return Path.Combine(root, "LibriSpeech", "dev-clean");
    }

    /// <summary>Common Voice layout: en/clips/*.mp3 with train.tsv and validated.tsv in the release's header.</summary>
    public static string CommonVoice(string root, int clips = 4)
    {
        string lang = Path.Combine(root, "cv-corpus-17.0-2024-03-15", "en");
        Directory.CreateDirectory(Path.Combine(lang, "clips"));
        const string header = "client_id\tpath\tsentence_id\tsentence\tsentence_domain\tup_votes\tdown_votes\tage\tgender\taccents\tvariant\tlocale\tsegment";
        var tsv = new StringBuilder(header + "\n");
        for (int i = 0; i < clips; i++)
        {
            string name = $"common_voice_en_{39000000 + i}.mp3", text = char.ToUpperInvariant(Sentences[i][0]) + Sentences[i][1..] + ".";
            Speak(Sentences[i], Path.Combine(lang, "clips", name));
            tsv.Append($"{new string((char)('a' + i), 64)}\t{name}\t{i:x8}\t{text}\t\t2\t0\ttwenties\tmale\t\t\ten\t\n");
        }
        File.WriteAllText(Path.Combine(lang, "train.tsv"), tsv.ToString());
        File.WriteAllText(Path.Combine(lang, "validated.tsv"), tsv.ToString());
        File.WriteAllText(Path.Combine(lang, "dev.tsv"), header + "\n");
        return lang;
    }

    /// <summary>An encoded image of a coloured square on a grey ground.</summary>
    public static byte[] Image(int seed, int size = 48, SKEncodedImageFormat format = SKEncodedImageFormat.Png)
    {
        using var bmp = new SKBitmap(size, size);
        using (var c = new SKCanvas(bmp))
        {
            c.Clear(new SKColor(128, 128, 128));
            using var paint = new SKPaint { Color = new SKColor((byte)(seed * 70 % 256), (byte)(seed * 130 % 256), (byte)(seed * 190 % 256)) };
            c.DrawRect(4 + seed % 8, 6, size / 2, size / 3, paint);
        }
        using var data = bmp.Encode(format, 90);
        return data.ToArray();
    }

    /// <summary>COCO captions layout: annotations/captions_val2017.json (images + annotations arrays) and val2017/*.jpg.</summary>
    public static string Coco(string root, int images = 4, int captionsPerImage = 2)
    {
        Directory.CreateDirectory(Path.Combine(root, "annotations"));
        Directory.CreateDirectory(Path.Combine(root, "val2017"));
        var ims = new JsonArray();
        var anns = new JsonArray();
        int annId = 1000;
        for (int i = 0; i < images; i++)
        {
            long id = 139 + i * 11;
            string file = $"{id:D12}.jpg";
            File.WriteAllBytes(Path.Combine(root, "val2017", file), Image(i, format: SKEncodedImageFormat.Jpeg));
            ims.Add(new JsonObject { ["license"] = 1, ["file_name"] = file, ["coco_url"] = "", ["height"] = 48, ["width"] = 48, ["date_captured"] = "2013-11-14 11:18:45", ["flickr_url"] = "", ["id"] = id });
            for (int c = 0; c < captionsPerImage; c++)
                anns.Add(new JsonObject { ["image_id"] = id, ["id"] = annId++, ["caption"] = $"{Sentences[(i + c) % Sentences.Length]} on a grey wall" });
        }
        var doc = new JsonObject
        {
            ["info"] = new JsonObject { ["description"] = "COCO 2017 Dataset", ["year"] = 2017 },
            ["licenses"] = new JsonArray(), ["images"] = ims, ["annotations"] = anns,
        };
        File.WriteAllText(Path.Combine(root, "annotations", "captions_val2017.json"), doc.ToJsonString());
        return root;
    }

    /// <summary>A WebDataset tar shard with the given members (name → bytes), in order.</summary>
    public static string Tar(string path, IEnumerable<(string Name, byte[] Data)> members)
    {
        using var f = File.Create(path);
        using var w = new TarWriter(f, TarEntryFormat.Pax);
        foreach (var (name, data) in members)
            w.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(data) });
        return path;
    }

    /// <summary>Text-only shards: shard s holds sizes[s] samples keyed "sSS-NNN" with a txt member equal to the key.</summary>
    public static List<string> TextShards(string dir, params int[] sizes)
    {
        var files = new List<string>();
        for (int s = 0; s < sizes.Length; s++)
            files.Add(Tar(Path.Combine(dir, $"shard-{s:D6}.tar"),
                Enumerable.Range(0, sizes[s]).Select(i => ($"s{s:D2}-{i:D3}.txt", Encoding.UTF8.GetBytes($"s{s:D2}-{i:D3}")))));
        return files;
    }

    /// <summary>
    /// A Parquet file as HF <c>datasets</c> exports it: a struct column (<c>image</c> or <c>audio</c>: {bytes, path}) and a
    /// string column, <paramref name="rowGroups"/> row groups.
    /// </summary>
    public static string Parquet(string path, string mediaColumn, string textColumn, IReadOnlyList<(byte[] Media, string Name, string Text)> rows, int rowGroups)
    {
        var bytes = new DataField<byte[]>("bytes");
        var name = new DataField<string>("path");
        var text = new DataField<string>(textColumn);
        var schema = new ParquetSchema(new StructField(mediaColumn, bytes, name), text);
        using var f = File.Create(path);
        var w = ParquetWriter.CreateAsync(schema, f).GetAwaiter().GetResult();
        try
        {
            int per = (rows.Count + rowGroups - 1) / rowGroups;
            foreach (var chunk in rows.Chunk(per))
            {
                using var rg = w.CreateRowGroup();
                rg.WriteAsync(bytes, chunk.Select(r => r.Media).ToArray()).GetAwaiter().GetResult();
                rg.WriteAsync(name, chunk.Select(r => r.Name).ToArray()).GetAwaiter().GetResult();
                rg.WriteAsync(text, chunk.Select(r => r.Text).ToArray()).GetAwaiter().GetResult();
            }
        }
        finally { w.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        return path;
    }
}

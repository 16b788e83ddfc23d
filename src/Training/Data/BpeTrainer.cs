using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Training;

/// <summary>
/// Learns a byte-level BPE vocabulary for <see cref="Llama3Tokenizer"/>: text is pre-split with
/// <see cref="Llama3Tokenizer.SplitPattern"/>, the 256 single bytes take ranks 0…255, then the most frequent adjacent
/// pair (ties: the pair of smaller token ids) is merged until the vocabulary has the requested size. The ranks file is
/// tiktoken format (<c>base64(token bytes) rank</c> per line) and loads with <see cref="Llama3Tokenizer.FromFile"/>,
/// which puts the 256 special tokens after it (ids size+0 … size+255).
/// </summary>
public static class BpeTrainer
{
    /// <summary>Learns a vocabulary of exactly <paramref name="vocabSize"/> base tokens (≥ 256, specials not
    /// counted); returns the token bytes in rank order. Throws if the corpus has too few distinct pairs.</summary>
    public static IReadOnlyList<byte[]> Train(IEnumerable<string> texts, int vocabSize)
    {
        if (vocabSize < 256) throw new DataFormatException($"vocabulary size {vocabSize} is below the 256 single bytes.");
        var split = new Regex(Llama3Tokenizer.SplitPattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);
        var chunkFreq = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var t in texts)
            foreach (Match m in split.Matches(t))
                chunkFreq[m.Value] = chunkFreq.GetValueOrDefault(m.Value) + 1;

        var tokens = new List<byte[]>();
        var index = new Dictionary<string, int>(StringComparer.Ordinal);   // Latin-1 view of the bytes → id
        for (int b = 0; b < 256; b++) { tokens.Add(new[] { (byte)b }); index[Latin1(tokens[b])] = b; }

        var words = chunkFreq.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => (Symbols: Encoding.UTF8.GetBytes(kv.Key).Select(x => (int)x).ToList(), Freq: kv.Value)).ToList();
        var pairCount = new Dictionary<long, long>();
        var where = new Dictionary<long, HashSet<int>>();
        for (int w = 0; w < words.Count; w++) Add(w);

        while (tokens.Count < vocabSize)
        {
            long best = -1, bestCount = 0;
            foreach (var (k, c) in pairCount)
                if (c > bestCount || (c == bestCount && c > 0 && k < best)) { best = k; bestCount = c; }
            if (best < 0)
                throw new DataFormatException($"the corpus supports only {tokens.Count} tokens (every pre-split chunk is one token); asked for {vocabSize}. Use a larger corpus or a smaller vocabulary.");
            int a = (int)(best >> 32), bb = (int)(best & 0xffffffff);
            var merged = tokens[a].Concat(tokens[bb]).ToArray();
            string key = Latin1(merged);
            if (!index.TryGetValue(key, out int id)) { id = tokens.Count; tokens.Add(merged); index[key] = id; }
            foreach (int w in where[best].ToArray())
            {
                Remove(w);
                var s = words[w].Symbols;
                var next = new List<int>(s.Count);
                for (int i = 0; i < s.Count; i++)
                {
                    if (i + 1 < s.Count && s[i] == a && s[i + 1] == bb) { next.Add(id); i++; }
                    else next.Add(s[i]);
                }
                words[w] = (next, words[w].Freq);
                Add(w);
            }
        }
        return tokens;

        void Add(int w)
        {
            var (s, f) = words[w];
            for (int i = 0; i + 1 < s.Count; i++)
            {
                long k = ((long)s[i] << 32) | (uint)s[i + 1];
                pairCount[k] = pairCount.GetValueOrDefault(k) + f;
                if (!where.TryGetValue(k, out var set)) where[k] = set = new HashSet<int>();
                set.Add(w);
            }
        }

        void Remove(int w)
        {
            var (s, f) = words[w];
            for (int i = 0; i + 1 < s.Count; i++)
            {
                long k = ((long)s[i] << 32) | (uint)s[i + 1];
                long c = pairCount[k] - f;
                if (c == 0) { pairCount.Remove(k); where.Remove(k); }
                else { pairCount[k] = c; where[k].Remove(w); }
            }
        }
    }

    /// <summary>Writes tokens as a tiktoken ranks file (rank = list position), atomically.</summary>
    public static void WriteRanks(IReadOnlyList<byte[]> tokens, string path)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < tokens.Count; i++) sb.Append(Convert.ToBase64String(tokens[i])).Append(' ').Append(i).Append('\n');
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir != null) Directory.CreateDirectory(dir);
        AtomicFile.WriteAllText(path, sb.ToString());
    }

    /// <summary>Trains on <paramref name="texts"/> and writes the ranks file to <paramref name="path"/>; returns the tokens.</summary>
    public static IReadOnlyList<byte[]> TrainToFile(IEnumerable<string> texts, int vocabSize, string path)
    {
        var tokens = Train(texts, vocabSize);
        WriteRanks(tokens, path);
        return tokens;
    }

    /// <summary>
    /// The texts of a corpus file: for <c>.jsonl</c>, every <c>"text"</c>, <c>"caption"</c> and message
    /// <c>"content"</c> string of each record; otherwise every non-empty line.
    /// </summary>
    public static IEnumerable<string> ReadTexts(string path)
    {
        if (!File.Exists(path)) throw new DataFormatException($"{path}: corpus file not found.");
        int lineNo = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            if (!path.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase)) { yield return line; continue; }
            var found = new List<string>();
            try
            {
                using var doc = JsonDocument.Parse(line);
                Collect(doc.RootElement, found);
            }
            catch (JsonException e) { throw new DataFormatException($"{path}:{lineNo}: invalid JSON ({e.Message}).", e); }
            foreach (var f in found) yield return f;
        }
    }

    static void Collect(JsonElement e, List<string> found)
    {
        if (e.ValueKind == JsonValueKind.Array) { foreach (var x in e.EnumerateArray()) Collect(x, found); return; }
        if (e.ValueKind != JsonValueKind.Object) return;
        foreach (var p in e.EnumerateObject())
        {
            if (p.Value.ValueKind == JsonValueKind.String && p.Name is "text" or "caption" or "content") found.Add(p.Value.GetString()!);
            else if (p.Value.ValueKind is JsonValueKind.Array or JsonValueKind.Object) Collect(p.Value, found);
        }
    }

    static string Latin1(byte[] b) => Encoding.Latin1.GetString(b);
}

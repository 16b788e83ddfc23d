using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Llama3.Multimodal.Text;

/// <summary>
/// Llama 3 byte-level BPE (tiktoken ranks) with the Llama 3 split regex and the 256 special tokens placed after the
/// base vocabulary (ids 128000–128255 for Meta's vocabulary). Special-token text in ordinary input is encoded as plain
/// text unless <c>allowSpecial</c> is set; only the chat formatter inserts specials.
/// </summary>
public sealed class Llama3Tokenizer
{
    /// <summary>The pre-tokenizer split regex of Llama 3.</summary>
    public const string SplitPattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>Number of special tokens.</summary>
    public const int NumSpecialTokens = 256;
    const int MaxChunkChars = 400_000;
    const int MaxRunChars = 25_000;

    readonly TiktokenTokenizer _bpe;
    readonly byte[][] _bytes;             // id → bytes for base tokens
    readonly Dictionary<string, int> _special;
    readonly string[] _specialNames;
    readonly Regex _specialSplit;

    /// <summary>Base (non-special) vocabulary size (128000 for Llama 3).</summary>
    public int BaseVocabSize { get; }
    /// <summary>Base vocabulary plus special tokens (128256 for Llama 3).</summary>
    public int VocabSize => BaseVocabSize + NumSpecialTokens;
    /// <summary><c>&lt;|begin_of_text|&gt;</c>.</summary>
    public int BosId => BaseVocabSize;
    /// <summary><c>&lt;|end_of_text|&gt;</c>.</summary>
    public int EosId => BaseVocabSize + 1;
    /// <summary><c>&lt;|finetune_right_pad_id|&gt;</c>.</summary>
    public int PadId => BaseVocabSize + 4;
    /// <summary><c>&lt;|start_header_id|&gt;</c>.</summary>
    public int StartHeaderId => BaseVocabSize + 6;
    /// <summary><c>&lt;|end_header_id|&gt;</c>.</summary>
    public int EndHeaderId => BaseVocabSize + 7;
    /// <summary><c>&lt;|eom_id|&gt;</c>.</summary>
    public int EomId => BaseVocabSize + 8;
    /// <summary><c>&lt;|eot_id|&gt;</c>.</summary>
    public int EotId => BaseVocabSize + 9;
    /// <summary><c>&lt;|python_tag|&gt;</c>.</summary>
    public int PythonTagId => BaseVocabSize + 10;
    /// <summary>Default stop tokens: end_of_text, eom, eot.</summary>
    public IReadOnlyList<int> StopIds => new[] { EosId, EomId, EotId };

    Llama3Tokenizer(byte[][] ranks, string source)
    {
        BaseVocabSize = ranks.Length;
        _bytes = ranks;
        _specialNames = SpecialNames();
        _special = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < _specialNames.Length; i++) _special[_specialNames[i]] = BaseVocabSize + i;
        var sb = new StringBuilder();
        for (int i = 0; i < ranks.Length; i++) sb.Append(Convert.ToBase64String(ranks[i])).Append(' ').Append(i).Append('\n');
        using var ms = new MemoryStream(Encoding.ASCII.GetBytes(sb.ToString()));
        try
        {
            _bpe = TiktokenTokenizer.Create(ms, new RegexPreTokenizer(new Regex(SplitPattern, RegexOptions.Compiled), null), null, null, 1 << 16);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            throw new TokenizerFormatException($"{source}: cannot build the BPE tokenizer ({e.Message}).", e);
        }
        _specialSplit = new Regex(string.Join("|", _special.Keys.OrderByDescending(k => k.Length).Select(Regex.Escape)), RegexOptions.CultureInvariant);
    }

    /// <summary>Names of the 256 special tokens in id order (Llama 3.1/3.2 names).</summary>
    public static string[] SpecialNames()
    {
        var n = new string[NumSpecialTokens];
        string[] head =
        {
            "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
            "<|finetune_right_pad_id|>", "<|step_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>",
            "<|eot_id|>", "<|python_tag|>",
        };
        head.CopyTo(n, 0);
        for (int k = head.Length; k < NumSpecialTokens; k++) n[k] = $"<|reserved_special_token_{k - 8}|>";
        return n;
    }

    /// <summary>The Llama 3 vocabulary shipped with the library (Meta's <c>tokenizer.model</c>, embedded).</summary>
    public static Llama3Tokenizer Default => _default.Value;
    static readonly Lazy<Llama3Tokenizer> _default = new(() =>
    {
        using var s = typeof(Llama3Tokenizer).Assembly.GetManifestResourceStream("Llama3.Multimodal.Text.tokenizer.model")
            ?? throw new TokenizerFormatException("the embedded Llama 3 tokenizer.model is missing from the assembly.");
        return FromTiktoken(s, "embedded tokenizer.model");
    });

    /// <summary>Loads <c>tokenizer.model</c> (tiktoken ranks) or a Hugging Face <c>tokenizer.json</c>, by content.</summary>
    public static Llama3Tokenizer FromFile(string path)
    {
        if (!File.Exists(path)) throw new TokenizerFormatException($"{path}: tokenizer file not found.");
        if (new FileInfo(path).Length > 64L << 20) throw new TokenizerFormatException($"{path}: larger than 64 MiB; not a tokenizer file.");
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) return FromHuggingFaceJson(path);
        using var s = File.OpenRead(path);
        return FromTiktoken(s, path);
    }

    /// <summary>Finds a tokenizer in a model folder: <c>tokenizer.model</c>, else <c>tokenizer.json</c>, else null.</summary>
    public static Llama3Tokenizer? FromModelDirectory(string dir)
    {
        string tm = Path.Combine(dir, "tokenizer.model"), tj = Path.Combine(dir, "tokenizer.json");
        if (File.Exists(tm)) return FromFile(tm);
        if (File.Exists(tj)) return FromFile(tj);
        return null;
    }

    /// <summary>Reads tiktoken ranks: one <c>base64 rank</c> line per token, ranks 0…N−1 each exactly once.</summary>
    public static Llama3Tokenizer FromTiktoken(Stream stream, string source)
    {
        var list = new List<byte[]?>();
        using var reader = new StreamReader(stream, Encoding.ASCII);
        string? line;
        int lineNo = 0;
        while ((line = reader.ReadLine()) != null)
        {
            lineNo++;
            if (line.Length == 0) continue;
            if (line.Length > 4096) throw new TokenizerFormatException($"{source}:{lineNo}: line too long for a ranks file.");
            int sp = line.IndexOf(' ');
            if (sp <= 0 || !int.TryParse(line.AsSpan(sp + 1), System.Globalization.NumberStyles.None, null, out int rank))
                throw new TokenizerFormatException($"{source}:{lineNo}: expected 'base64 rank'.");
            byte[] tok;
            try { tok = Convert.FromBase64String(line[..sp]); }
            catch (FormatException) { throw new TokenizerFormatException($"{source}:{lineNo}: invalid base64 token."); }
            if (rank > 10_000_000) throw new TokenizerFormatException($"{source}:{lineNo}: rank {rank} is absurd.");
            while (list.Count <= rank) list.Add(null);
            if (list[rank] != null) throw new TokenizerFormatException($"{source}:{lineNo}: rank {rank} appears twice.");
            list[rank] = tok;
        }
        if (list.Count == 0) throw new TokenizerFormatException($"{source}: no tokens.");
        int hole = list.IndexOf(null);
        if (hole >= 0) throw new TokenizerFormatException($"{source}: rank {hole} is missing.");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < list.Count; i++)
            if (!seen.Add(Convert.ToBase64String(list[i]!))) throw new TokenizerFormatException($"{source}: token of rank {i} is a duplicate.");
        for (int b = 0; b < 256; b++)
            if (!seen.Contains(Convert.ToBase64String(new[] { (byte)b }))) throw new TokenizerFormatException($"{source}: single byte {b} has no token; byte-level BPE needs all 256.");
        return new Llama3Tokenizer(list.ToArray()!, source);
    }

    /// <summary>
    /// Reads a Hugging Face <c>tokenizer.json</c> of a Llama 3 model (byte-level BPE). Token strings are mapped back
    /// to bytes through the GPT-2 byte↔unicode table and their ids become ranks; added tokens must be the specials.
    /// </summary>
    public static Llama3Tokenizer FromHuggingFaceJson(string path)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { MaxDepth = 64 }); }
        catch (JsonException e) { throw new TokenizerFormatException($"{path}: invalid JSON ({e.Message}).", e); }
        using (doc)
        {
            if (!doc.RootElement.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object
                || !model.TryGetProperty("type", out var type) || type.GetString() != "BPE" || !model.TryGetProperty("vocab", out var vocab) || vocab.ValueKind != JsonValueKind.Object)
                throw new TokenizerFormatException($"{path}: expected a byte-level BPE model with a vocab object.");
            var unicodeToByte = ByteLevelDecoderTable();
            var entries = new List<(int Id, byte[] Bytes)>();
            foreach (var p in vocab.EnumerateObject())
            {
                if (!p.Value.TryGetInt32(out int id) || id < 0) throw new TokenizerFormatException($"{path}: vocab['{p.Name}'] is not a non-negative id.");
                var bytes = new List<byte>();
                foreach (char ch in p.Name)
                {
                    if (!unicodeToByte.TryGetValue(ch, out byte b)) throw new TokenizerFormatException($"{path}: vocab entry '{p.Name}' is not byte-level encoded.");
                    bytes.Add(b);
                }
                entries.Add((id, bytes.ToArray()));
            }
            entries.Sort((a, b) => a.Id.CompareTo(b.Id));
            for (int i = 0; i < entries.Count; i++)
                if (entries[i].Id != i) throw new TokenizerFormatException($"{path}: vocab ids are not contiguous from 0 (id {i} missing or repeated).");
            var sb = new StringBuilder();
            foreach (var (id, bytes) in entries) sb.Append(Convert.ToBase64String(bytes)).Append(' ').Append(id).Append('\n');
            using var ms = new MemoryStream(Encoding.ASCII.GetBytes(sb.ToString()));
            var tok = FromTiktoken(ms, path);
            if (doc.RootElement.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
                foreach (var a in added.EnumerateArray())
                {
                    string? content = a.TryGetProperty("content", out var c) ? c.GetString() : null;
                    int id = a.TryGetProperty("id", out var i) && i.TryGetInt32(out int v) ? v : -1;
                    if (content == null || id < 0) throw new TokenizerFormatException($"{path}: added token without content/id.");
                    if (id >= tok.BaseVocabSize && id < tok.VocabSize && tok._specialNames[id - tok.BaseVocabSize] != content
                        && !content.StartsWith("<|reserved_special_token_", StringComparison.Ordinal))
                        throw new TokenizerFormatException($"{path}: added token {id} is '{content}', expected '{tok._specialNames[id - tok.BaseVocabSize]}'.");
                }
            return tok;
        }
    }

    static Dictionary<char, byte> ByteLevelDecoderTable()
    {
        // GPT-2 byte-level: printable bytes map to themselves, the rest to 256 + n in order.
        var map = new Dictionary<char, byte>();
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF;
            map[printable ? (char)b : (char)(256 + n++)] = (byte)b;
        }
        return map;
    }

    /// <summary>Id of a special token by name (e.g. <c>&lt;|eot_id|&gt;</c>).</summary>
    public int SpecialId(string name) =>
        _special.TryGetValue(name, out int id) ? id : throw new ArgumentException($"'{name}' is not a special token.");

    /// <summary>True for special-token ids.</summary>
    public bool IsSpecial(int id) => id >= BaseVocabSize && id < VocabSize;

    /// <summary>
    /// Encodes <paramref name="text"/>. Special-token text is plain text unless <paramref name="allowSpecial"/>.
    /// Long inputs are split as the reference does (≤400 000 chars, ≤25 000-char runs) before the regex.
    /// </summary>
    public List<int> Encode(string text, bool bos = false, bool eos = false, bool allowSpecial = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>();
        if (bos) ids.Add(BosId);
        if (allowSpecial)
        {
            int last = 0;
            foreach (Match m in _specialSplit.Matches(text))
            {
                EncodeOrdinary(text[last..m.Index], ids);
                ids.Add(_special[m.Value]);
                last = m.Index + m.Length;
            }
            EncodeOrdinary(text[last..], ids);
        }
        else EncodeOrdinary(text, ids);
        if (eos) ids.Add(EosId);
        return ids;
    }

    void EncodeOrdinary(string text, List<int> ids)
    {
        if (text.Length == 0) return;
        for (int i = 0; i < text.Length; i += MaxChunkChars)
        {
            string chunk = text.Substring(i, Math.Min(MaxChunkChars, text.Length - i));
            foreach (string piece in SplitRuns(chunk, MaxRunChars))
                ids.AddRange(_bpe.EncodeToIds(piece));
        }
    }

    /// <summary>Splits so that no piece has more than <paramref name="max"/> consecutive whitespace or non-whitespace chars (reference behaviour).</summary>
    internal static IEnumerable<string> SplitRuns(string s, int max)
    {
        if (s.Length <= max) { yield return s; yield break; }
        int runLen = 0;
        bool? currentIsSpace = null;
        int start = 0;
        for (int i = 0; i < s.Length; i++)
        {
            bool isSpace = char.IsWhiteSpace(s[i]);
            if (currentIsSpace == null || isSpace != currentIsSpace) { currentIsSpace = isSpace; runLen = 1; }
            else
            {
                runLen++;
                if (runLen > max)
                {
                    yield return s[start..i];
                    start = i;
                    runLen = 1;
                }
            }
        }
        yield return s[start..];
    }

    /// <summary>Bytes of token <paramref name="id"/> (UTF-8 of the name for specials).</summary>
    public byte[] TokenBytes(int id)
    {
        if (id >= 0 && id < BaseVocabSize) return _bytes[id];
        if (IsSpecial(id)) return Encoding.UTF8.GetBytes(_specialNames[id - BaseVocabSize]);
        throw new ArgumentOutOfRangeException(nameof(id), $"token id {id} is outside the vocabulary (0..{VocabSize - 1}).");
    }

    /// <summary>Decodes ids to text (invalid UTF-8 becomes U+FFFD). Specials are written by name unless skipped.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecial = false)
    {
        var buf = new List<byte>();
        foreach (int id in ids)
        {
            if (skipSpecial && IsSpecial(id)) continue;
            buf.AddRange(TokenBytes(id));
        }
        return Encoding.UTF8.GetString(buf.ToArray());
    }

    /// <summary>A fresh streaming decoder that returns text only once its UTF-8 bytes are complete.</summary>
    public StreamingDecoder NewStreamingDecoder(bool skipSpecial = true) => new(this, skipSpecial);
}

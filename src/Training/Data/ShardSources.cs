using System.Formats.Tar;
using System.Text;
using System.Text.RegularExpressions;
using Parquet;
using Parquet.Schema;
using Parquet.Serialization;

namespace Llama3.Multimodal.Training;

/// <summary>
/// One sample read from a shard: its members by name. In a WebDataset tar shard the members are the files that share the
/// sample's key, named by extension (<c>KEY.jpg</c> → <c>jpg</c>, <c>KEY.seg.png</c> → <c>seg.png</c>); in a Parquet row
/// group they are the row's binary and string columns by name (an HF <c>Image</c>/<c>Audio</c> struct column gives its
/// <c>bytes</c> under the column's name; a nested column, such as HF chat <c>messages</c>, its value as JSON text).
/// </summary>
/// <param name="Shard">The shard (tar file, or Parquet file and row group) the sample comes from.</param>
/// <param name="Key">The sample's key (WebDataset) or row (Parquet: <c>__key__</c>/<c>id</c> column, else <c>row N</c>).</param>
/// <param name="Members">Member bytes by extension or column name (case-insensitive).</param>
public sealed record ShardSample(string Shard, string Key, IReadOnlyDictionary<string, byte[]> Members)
{
    /// <summary>"shard, key K": where the sample sits, for messages.</summary>
    public string Where => $"{Shard}, key {Key}";
    /// <summary>The member's bytes, or null.</summary>
    public byte[]? Member(string name) => Members.TryGetValue(name, out var b) ? b : null;
    /// <summary>The member as UTF-8 text (trimmed), or null.</summary>
    public string? Text(string name) => Member(name) is { } b ? Encoding.UTF8.GetString(b).Trim() : null;
}

/// <summary>What a data source string names.</summary>
public enum DataSourceKind
{
    /// <summary>A JSONL manifest of loose files.</summary>
    Jsonl,
    /// <summary>WebDataset tar shards.</summary>
    Tar,
    /// <summary>Parquet files (each row group is a shard).</summary>
    Parquet,
}

/// <summary>
/// Resolves <c>data.train</c>/<c>data.eval</c>: a JSONL manifest; a <c>.tar</c> file, a folder of <c>.tar</c> files or a
/// brace pattern (<c>shard-{000000..000127}.tar</c>); a <c>.parquet</c> file, a folder holding <c>.parquet</c> files (also
/// in subfolders, as HF exports lay them out) or a brace pattern.
/// </summary>
public static class DataSources
{
    static readonly Regex Brace = new(@"\{(\d+)\.\.(\d+)\}", RegexOptions.CultureInvariant);

    /// <summary>The kind of <paramref name="source"/> and its files in order (one file for a manifest).</summary>
    public static (DataSourceKind Kind, IReadOnlyList<string> Files) Resolve(string source)
    {
        if (string.IsNullOrWhiteSpace(source)) throw new DataFormatException("empty data source.");
        if (Brace.IsMatch(source))
        {
            var files = Expand(source).ToList();
            var missing = files.Where(f => !File.Exists(f)).ToList();
            if (missing.Count > 0)
                throw new DataFormatException($"{source}: {missing.Count} of {files.Count} files of the pattern do not exist (first: {missing[0]}).");
            return (KindOf(files[0], source), files);
        }
        if (Directory.Exists(source))
        {
            var tars = Directory.GetFiles(source, "*.tar", SearchOption.AllDirectories).OrderBy(f => f, StringComparer.Ordinal).ToList();
            var parquets = Directory.GetFiles(source, "*.parquet", SearchOption.AllDirectories).OrderBy(f => f, StringComparer.Ordinal).ToList();
            if (tars.Count > 0 && parquets.Count > 0)
                throw new DataFormatException($"{source}: the folder holds both .tar and .parquet files; name one kind (a file, a pattern or a folder of one kind).");
            if (tars.Count > 0) return (DataSourceKind.Tar, tars);
            if (parquets.Count > 0) return (DataSourceKind.Parquet, parquets);
            throw new DataFormatException($"{source}: the folder holds no .tar shards and no .parquet files.");
        }
        if (!File.Exists(source)) throw new DataFormatException($"{source}: data source not found (a JSONL manifest, .tar shard(s) or .parquet file(s)).");
        return (KindOf(source, source), new[] { source });
    }

    static DataSourceKind KindOf(string file, string source) => Path.GetExtension(file).ToLowerInvariant() switch
    {
        ".tar" => DataSourceKind.Tar,
        ".parquet" => DataSourceKind.Parquet,
        _ when source != file => throw new DataFormatException($"{source}: a pattern must name .tar or .parquet files, not '{Path.GetFileName(file)}'."),
        _ => DataSourceKind.Jsonl,
    };

    /// <summary>Expands every <c>{a..b}</c> range (zero-padded to the width of <c>a</c>), left to right.</summary>
    public static IEnumerable<string> Expand(string pattern)
    {
        var m = Brace.Match(pattern);
        if (!m.Success) { yield return pattern; yield break; }
        string a = m.Groups[1].Value, b = m.Groups[2].Value;
        if (!long.TryParse(a, out long from) || !long.TryParse(b, out long to) || to < from)
            throw new DataFormatException($"{pattern}: invalid range {{{a}..{b}}} (need first ≤ last).");
        if (to - from >= 1_000_000) throw new DataFormatException($"{pattern}: range {{{a}..{b}}} names over a million files.");
        int width = a.Length;
        for (long i = from; i <= to; i++)
        {
            string head = pattern[..m.Index] + i.ToString().PadLeft(width, '0');
            foreach (var rest in Expand(pattern[(m.Index + m.Length)..])) yield return head + rest;
        }
    }

    /// <summary>
    /// The shards of a tar or Parquet source (each Parquet row group is one shard). With fewer shards than
    /// <paramref name="readers"/>, each shard is split into ⌈readers / shards⌉ interleaved parts (sample i of a shard goes
    /// to part i mod parts), so that every reader, and so every data-parallel rank, has shards of its own even when the
    /// source is a single <c>.tar</c>; the split depends only on the shard count and <paramref name="readers"/>.
    /// </summary>
    internal static IReadOnlyList<ShardUnit> Units(DataSourceKind kind, IReadOnlyList<string> files, int readers = 1)
    {
        IReadOnlyList<ShardUnit> units = kind switch
        {
            DataSourceKind.Tar => files.Select(f => (ShardUnit)new TarShard(f)).ToList(),
            DataSourceKind.Parquet => files.SelectMany(f => ParquetShard.WithRowBase(ParquetShard.Of(f))).ToList(),
            _ => throw new ArgumentException("a JSONL manifest has no shards.", nameof(kind)),
        };
        if (units.Count == 0 || units.Count >= readers) return units;
        int parts = (readers + units.Count - 1) / units.Count;
        return units.SelectMany(u => Enumerable.Range(0, parts).Select(p => (ShardUnit)new ShardPart(u, p, parts))).ToList();
    }
}

/// <summary>A shard: something that yields samples in a fixed order and can start after the first N of them.</summary>
internal abstract class ShardUnit
{
    /// <summary>How the shard is named in messages.</summary>
    public abstract string Name { get; }
    /// <summary>The samples after the first <paramref name="skip"/> ones (skipped ones are not read into memory).</summary>
    public IEnumerable<ShardSample> Read(long skip, CancellationToken cancel) => ReadPart(0, 1, skip, cancel);

    /// <summary>
    /// The samples i with i mod <paramref name="parts"/> = <paramref name="part"/>, after the first <paramref name="skip"/>
    /// of those (samples of other parts, and skipped ones, are not read into memory).
    /// </summary>
    public abstract IEnumerable<ShardSample> ReadPart(int part, int parts, long skip, CancellationToken cancel);
}

/// <summary>One of <c>parts</c> interleaved parts of a shard: its samples i with i mod parts = part, in order.</summary>
internal sealed class ShardPart(ShardUnit inner, int part, int parts) : ShardUnit
{
    public override string Name => $"{inner.Name} (part {part + 1} of {parts})";

    public override IEnumerable<ShardSample> ReadPart(int p, int n, long skip, CancellationToken cancel)
    {
        if (n != 1) throw new NotSupportedException("a shard part is not split again.");
        return inner.ReadPart(part, parts, skip, cancel);
    }
}

/// <summary>
/// A WebDataset tar shard read as a stream: consecutive files with the same key (the path up to the first dot of the file
/// name) form one sample. Directories, and files whose name starts with a dot, are not samples.
/// </summary>
internal sealed class TarShard(string path) : ShardUnit
{
    public override string Name => path;

    /// <summary>Splits a member path into (key, extension) by the WebDataset convention.</summary>
    public static (string Key, string Ext) Split(string name)
    {
        int slash = name.LastIndexOf('/');
        int dot = name.IndexOf('.', slash + 1);
        return dot <= slash + 1 ? (name, "") : (name[..dot], name[(dot + 1)..].ToLowerInvariant());
    }

    public override IEnumerable<ShardSample> ReadPart(int part, int parts, long skip, CancellationToken cancel)
    {
        bool Wanted(long i) => i % parts == part && i / parts >= skip;
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        using var reader = new TarReader(file);
        string? key = null;
        Dictionary<string, byte[]>? members = null;
        long index = 0;
        while (true)
        {
            cancel.ThrowIfCancellationRequested();
            TarEntry? e;
            try { e = reader.GetNextEntry(copyData: false); }
            catch (Exception ex) when (ex is InvalidDataException or FormatException or EndOfStreamException)
            {
                throw new DataFormatException($"{path}: not a readable tar archive after {index} samples ({ex.Message}).", ex);
            }
            if (e is null) break;
            if (e.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile)) continue;
            string name = e.Name.Replace('\\', '/');
            if (Path.GetFileName(name).StartsWith('.')) continue;
            var (k, ext) = Split(name);
            if (k != key)
            {
                if (key is not null)
                {
                    if (Wanted(index)) yield return new ShardSample(path, key, members!);
                    index++;
                }
                key = k;
                members = new Dictionary<string, byte[]>(StringComparer.OrdinalIgnoreCase);
            }
            if (!Wanted(index)) continue;
            if (e.Length > int.MaxValue) throw new DataFormatException($"{path}: member {name} of {e.Length} bytes is too large.");
            var data = new byte[e.Length];
            if (e.DataStream is { } ds) ds.ReadExactly(data);
            if (members!.ContainsKey(ext))
                throw new DataFormatException($"{path}: key {key} has two '{ext}' members (the samples of a key must be consecutive and unique).");
            members[ext] = data;
        }
        if (key is not null && Wanted(index)) yield return new ShardSample(path, key, members!);
    }
}

/// <summary>
/// One row group of a Parquet file. Its binary and string columns become the members of each row; an HF
/// <c>datasets</c> <c>Image</c>/<c>Audio</c> feature (a struct {bytes, path}) gives its bytes under the struct's name.
/// The row group's columns are read whole (a row group is the bounded unit Parquet itself reads), once for all the parts
/// of a split row group while any of them still holds it.
/// </summary>
internal sealed class ParquetShard(string path, int group, long rows) : ShardUnit
{
    public override string Name => $"{path} (row group {group})";
    public long Rows => rows;

    public static IEnumerable<ParquetShard> Of(string path)
    {
        int groups;
        var counts = new List<long>();
        try
        {
            var reader = ParquetReader.CreateAsync(path).GetAwaiter().GetResult();
            try
            {
                groups = reader.RowGroupCount;
                for (int g = 0; g < groups; g++) { using var rg = reader.OpenRowGroupReader(g); counts.Add(rg.RowCount); }
            }
            finally { reader.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or ArgumentException or InvalidOperationException)
        {
            throw new DataFormatException($"{path}: not a readable Parquet file ({e.Message}).", e);
        }
        for (int g = 0; g < groups; g++) yield return new ParquetShard(path, g, counts[g]);
    }

    /// <summary>The columns read as members: (member name, leaf field), binary or string.</summary>
    static List<(string Name, DataField Field)> Columns(ParquetSchema schema)
    {
        var list = new List<(string, DataField)>();
        foreach (var f in schema.Fields)
        {
            if (f is DataField d && !d.IsArray && (IsBinary(d) || IsString(d))) list.Add((d.Name, d));
            else if (f is StructField s && s.Fields.OfType<DataField>().FirstOrDefault(x => x.Name == "bytes" && IsBinary(x)) is { } bytes)
                list.Add((s.Name, bytes));
        }
        return list;
    }

    /// <summary>
    /// Nested columns (a list, e.g. HF chat <c>messages</c> as list&lt;struct&lt;content, role&gt;&gt;, or a struct that is
    /// not an <c>Image</c>/<c>Audio</c> {bytes, path}): each row's value becomes a member holding its JSON text.
    /// </summary>
    static List<string> Nested(ParquetSchema schema) =>
        schema.Fields.Where(f => f is ListField || f is StructField s && !s.Fields.OfType<DataField>().Any(x => x.Name == "bytes" && IsBinary(x)))
            .Select(f => f.Name).ToList();

    static bool IsString(DataField d) => d.ClrType == typeof(string) || d.ClrType == typeof(ReadOnlyMemory<char>);
    static bool IsBinary(DataField d) => d.ClrType == typeof(byte[]) || d.ClrType == typeof(ReadOnlyMemory<byte>);

    // The decoded row group, kept while anything uses it: the parts of a split row group (one per reader) then decode it
    // once between them instead of once each.
    readonly object _gate = new();
    WeakReference<Decoded>? _decoded;

    sealed record Decoded(long Rows, List<(string Name, Array Values)> Columns);

    Decoded Load(CancellationToken cancel)
    {
        lock (_gate)
        {
            if (_decoded is not null && _decoded.TryGetTarget(out var d)) return d;
            d = ReadGroup(cancel);
            _decoded = new WeakReference<Decoded>(d);
            return d;
        }
    }

    public override IEnumerable<ShardSample> ReadPart(int part, int parts, long skip, CancellationToken cancel)
    {
        cancel.ThrowIfCancellationRequested();
        var (n, columns) = Load(cancel);
        var keyColumn = columns.FirstOrDefault(c => c.Name is "__key__" or "id" or "key" && c.Values is string?[]).Values as string?[];
        for (long r = skip * parts + part; r < n; r += parts)
        {
            cancel.ThrowIfCancellationRequested();
            var members = new Dictionary<string, byte[]>(StringComparer.OrdinalIgnoreCase);
            foreach (var (name, values) in columns)
            {
                if (values is string?[] s) { if (s[r] is { } t) members[name] = Encoding.UTF8.GetBytes(t); }
                else if (((byte[]?[])values)[r] is { } b) members[name] = b;
            }
            yield return new ShardSample(Name, keyColumn?[r] is { Length: > 0 } k ? k : $"row {RowBase + r}", members);
        }
    }

    Decoded ReadGroup(CancellationToken cancel)
    {
        var columns = new List<(string Name, Array Values)>();
        long n;
        try
        {
            var reader = ParquetReader.CreateAsync(path).GetAwaiter().GetResult();
            try
            {
            using var rg = reader.OpenRowGroupReader(group);
            n = rg.RowCount;
            foreach (var (name, field) in Columns(reader.Schema))
            {
                if (IsString(field))
                {
                    var v = new string?[n];
                    rg.ReadAsync(field, v.AsMemory(), null, cancel).GetAwaiter().GetResult();
                    columns.Add((name, v));
                }
                else
                {
                    var v = new byte[]?[n];
                    rg.ReadAsync(field, v.AsMemory(), null, cancel).GetAwaiter().GetResult();
                    columns.Add((name, v));
                }
            }
            if (Nested(reader.Schema) is { Count: > 0 } nested)
            {
                using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
                var rows = ParquetSerializer.DeserializeUntypedAsync(stream, null, group, cancel).GetAwaiter().GetResult().Data;
                foreach (var name in nested)
                    columns.Add((name, rows.Select(r => r.TryGetValue(name, out var v) && v is not null ? System.Text.Json.JsonSerializer.Serialize(v) : null).ToArray()));
            }
            }
            finally { reader.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or ArgumentException or InvalidOperationException or IndexOutOfRangeException)
        {
            throw new DataFormatException($"{Name}: cannot read the row group ({e.Message}).", e);
        }
        return new Decoded(n, columns);
    }

    /// <summary>Row number of this group's first row in the file (for keys).</summary>
    long RowBase { get; init; }

    /// <summary>The row groups of one file with their first rows numbered file-wide.</summary>
    public static IEnumerable<ParquetShard> WithRowBase(IEnumerable<ParquetShard> groups)
    {
        long b = 0;
        foreach (var g in groups) { yield return new ParquetShard(g.ParquetPath, g.Group, g.Rows) { RowBase = b }; b += g.Rows; }
    }

    string ParquetPath => path;
    int Group => group;
}

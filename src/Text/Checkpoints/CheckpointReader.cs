using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>
/// All safetensors of one checkpoint folder seen as one key space: <c>*.safetensors.index.json</c> (sharded),
/// <c>model.safetensors</c>, or the folder's only <c>*.safetensors</c> file (Meta layout written by us:
/// <c>consolidated.safetensors</c>).
/// </summary>
public sealed class CheckpointReader : IDisposable
{
    readonly Dictionary<string, SafeTensorsFile> _files = new(StringComparer.Ordinal);
    readonly Dictionary<string, SafeTensorsFile> _byKey = new(StringComparer.Ordinal);

    /// <summary>The folder.</summary>
    public string Directory { get; }
    /// <summary>Every key in the checkpoint.</summary>
    public IReadOnlyCollection<string> Keys => _byKey.Keys;

    CheckpointReader(string dir) => Directory = dir;

    /// <summary>Opens the checkpoint in <paramref name="directory"/>, validating every header and the index.</summary>
    public static CheckpointReader Open(string directory)
    {
        if (!System.IO.Directory.Exists(directory)) throw new CheckpointFormatException($"{directory}: checkpoint folder not found.");
        var r = new CheckpointReader(directory);
        try
        {
            string[] indexes = System.IO.Directory.GetFiles(directory, "*.safetensors.index.json");
            if (indexes.Length > 1) throw new CheckpointFormatException($"{directory}: more than one safetensors index ({string.Join(", ", indexes.Select(Path.GetFileName))}).");
            if (indexes.Length == 1) r.OpenIndex(indexes[0]);
            else
            {
                string single = Path.Combine(directory, "model.safetensors");
                if (!File.Exists(single))
                {
                    string[] all = System.IO.Directory.GetFiles(directory, "*.safetensors");
                    if (all.Length != 1) throw new CheckpointFormatException($"{directory}: expected model.safetensors, an index, or exactly one *.safetensors file; found {all.Length}.");
                    single = all[0];
                }
                var f = SafeTensorsFile.Open(single);
                r._files[single] = f;
                foreach (var k in f.Entries.Keys) r._byKey[k] = f;
            }
            return r;
        }
        catch
        {
            r.Dispose();
            throw;
        }
    }

    void OpenIndex(string indexPath)
    {
        JsonObject index;
        try { index = LlamaConfigJson.ReadObject(indexPath); }
        catch (ConfigException e) { throw new CheckpointFormatException(e.Message, e); }
        if (index["weight_map"] is not JsonObject map) throw new CheckpointFormatException($"{indexPath}: missing 'weight_map' object.");
        foreach (var kv in map)
        {
            if (kv.Value is not JsonValue v || !v.TryGetValue(out string? file) || file.Contains('/') || file.Contains('\\') || file.Contains(".."))
                throw new CheckpointFormatException($"{indexPath}: weight_map['{kv.Key}'] must be a plain file name in the same folder.");
            string full = Path.Combine(Directory, file);
            if (!_files.TryGetValue(full, out var f))
            {
                if (!File.Exists(full)) throw new CheckpointFormatException($"{indexPath}: weight_map['{kv.Key}'] names '{file}', which does not exist.");
                f = SafeTensorsFile.Open(full);
                _files[full] = f;
            }
            if (!f.Entries.ContainsKey(kv.Key)) throw new CheckpointFormatException($"{indexPath}: weight_map says '{kv.Key}' is in '{file}', but that file has no such tensor.");
            _byKey[kv.Key] = f;
        }
    }

    /// <summary>True when the checkpoint has <paramref name="key"/>.</summary>
    public bool Contains(string key) => _byKey.ContainsKey(key);

    /// <summary>Header entry of <paramref name="key"/>.</summary>
    public SafeTensorInfo Info(string key) => FileOf(key).Info(key);

    /// <summary>Reads <paramref name="key"/> into a new CPU tensor of its stored dtype.</summary>
    public Tensor Read(string key) => FileOf(key).Read(key);

    /// <summary>Reads rows [<paramref name="row0"/>, <paramref name="row0"/> + <paramref name="rows"/>) of tensor <paramref name="key"/> (first dimension).</summary>
    public Tensor ReadRows(string key, long row0, long rows) => FileOf(key).ReadRows(key, row0, rows);

    /// <summary>Reads rows from <paramref name="row0"/> of tensor <paramref name="key"/> into <paramref name="destination"/> (see <see cref="SafeTensorsFile.ReadRowsInto"/>).</summary>
    public void ReadRowsInto(string key, long row0, Tensor destination) => FileOf(key).ReadRowsInto(key, row0, destination);

    /// <summary>Reads <paramref name="key"/> into <paramref name="destination"/> (shape must match).</summary>
    public void ReadInto(string key, Tensor destination) => FileOf(key).ReadInto(key, destination);

    internal SafeTensorsFile FileOf(string key) =>
        _byKey.TryGetValue(key, out var f) ? f : throw new CheckpointFormatException($"{Directory}: checkpoint has no tensor '{key}'.");

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var f in _files.Values) f.Dispose();
        _files.Clear();
        _byKey.Clear();
    }
}

using System.Text;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>A tensor to write: its key, shape and dtype up front, and a producer called once when its bytes are written.</summary>
/// <param name="Name">Key.</param>
/// <param name="Shape">Shape.</param>
/// <param name="DType">Stored dtype (the produced tensor is cast to it).</param>
/// <param name="Produce">Returns the tensor (any device); the writer disposes it if <paramref name="Owned"/>.</param>
/// <param name="Owned">Whether the produced tensor is disposed after writing.</param>
public sealed record TensorToWrite(string Name, long[] Shape, ScalarType DType, Func<Tensor> Produce, bool Owned = true);

/// <summary>
/// Writes safetensors files atomically (temp file in the same folder, then rename), streaming one tensor at a time.
/// Also writes sharded checkpoints with <c>model.safetensors.index.json</c>.
/// </summary>
public static class SafeTensorsWriter
{
    /// <summary>Alignment in bytes of the start of the data buffer in files written here.</summary>
    public const int DataAlignment = 64;

    /// <summary>Writes <paramref name="tensors"/> (existing tensors, not disposed) to <paramref name="path"/>, keeping each tensor's dtype unless <paramref name="dtype"/> is given.</summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null, ScalarType? dtype = null) =>
        Write(path, tensors.Select(kv => new TensorToWrite(kv.Key, kv.Value.shape, dtype ?? kv.Value.dtype, () => kv.Value, false)).ToList(), metadata);

    /// <summary>Writes the given tensors to <paramref name="path"/> atomically.</summary>
    public static void Write(string path, IReadOnlyList<TensorToWrite> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var m = new JsonObject();
            foreach (var kv in metadata) m[kv.Key] = kv.Value;
            header["__metadata__"] = m;
        }
        long offset = 0;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tensors)
        {
            if (!seen.Add(t.Name)) throw new ArgumentException($"tensor key '{t.Name}' given twice.");
            long bytes = t.Shape.Aggregate(1L, (a, b) => a * b) * SafeTensorDType.Size(t.DType);
            header[t.Name] = new JsonObject
            {
                ["dtype"] = SafeTensorDType.Name(t.DType),
                ["shape"] = new JsonArray(t.Shape.Select(s => (JsonNode)JsonValue.Create(s)).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        // Spaces pad the header so the data starts 64-byte aligned (the format asks for 8): tensors memory-mapped at
        // load time then start on a cache line whenever their offsets are multiples of 64, as weight rows usually are.
        int padded = (json.Length + 8 + DataAlignment - 1) / DataAlignment * DataAlignment - 8;
        string dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        string tmp = System.IO.Path.Combine(dir, "." + System.IO.Path.GetFileName(path) + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                fs.Write(BitConverter.GetBytes((ulong)padded));
                fs.Write(json);
                for (int i = json.Length; i < padded; i++) fs.WriteByte((byte)' ');
                foreach (var t in tensors) WriteTensor(fs, t);
                fs.Flush(true);
            }
            File.Move(tmp, path, true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }

    static void WriteTensor(Stream s, TensorToWrite t)
    {
        Tensor src = t.Produce();
        try
        {
            if (!src.shape.SequenceEqual(t.Shape))
                throw new ArgumentException($"tensor '{t.Name}' has shape [{string.Join(", ", src.shape)}], announced [{string.Join(", ", t.Shape)}].");
            using var scope = NewDisposeScope();
            var c = src;
            if (c.device_type != DeviceType.CPU) c = c.to(CPU);
            if (c.dtype != t.DType) c = c.to_type(t.DType);
            if (!c.is_contiguous()) c = c.contiguous();
            using var flat = c.view(-1);
            long elem = SafeTensorDType.Size(t.DType);
            long per = (1L << 30) / elem;
            long n = flat.shape[0];
            for (long e0 = 0; e0 < n; e0 += per)
            {
                using var part = flat.narrow(0, e0, Math.Min(per, n - e0));
                s.Write(part.bytes);
            }
        }
        finally
        {
            if (t.Owned) src.Dispose();
        }
    }

    /// <summary>
    /// Writes a sharded checkpoint into <paramref name="directory"/>: files <c>{prefix}-0000k-of-0000n.safetensors</c> of at
    /// most <paramref name="maxShardBytes"/> each (a larger single tensor gets its own shard) and
    /// <c>{prefix}.safetensors.index.json</c>. With one shard, writes <c>{prefix}.safetensors</c> alone.
    /// </summary>
    public static void WriteSharded(string directory, IReadOnlyList<TensorToWrite> tensors, long maxShardBytes, string prefix = "model")
    {
        var shards = new List<List<TensorToWrite>> { new() };
        long cur = 0, total = 0;
        foreach (var t in tensors)
        {
            long b = t.Shape.Aggregate(1L, (a, x) => a * x) * SafeTensorDType.Size(t.DType);
            if (cur > 0 && cur + b > maxShardBytes) { shards.Add(new()); cur = 0; }
            shards[^1].Add(t);
            cur += b; total += b;
        }
        Directory.CreateDirectory(directory);
        if (shards.Count == 1)
        {
            Write(System.IO.Path.Combine(directory, prefix + ".safetensors"), shards[0], new Dictionary<string, string> { ["format"] = "pt" });
            return;
        }
        var map = new JsonObject();
        for (int i = 0; i < shards.Count; i++)
        {
            string file = $"{prefix}-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            Write(System.IO.Path.Combine(directory, file), shards[i], new Dictionary<string, string> { ["format"] = "pt" });
            foreach (var t in shards[i]) map[t.Name] = file;
        }
        var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = total }, ["weight_map"] = map };
        AtomicFile.WriteAllText(System.IO.Path.Combine(directory, prefix + ".safetensors.index.json"), index.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    }
}

using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>
/// A safetensors file opened for reading: the header is parsed and validated up front (length, JSON, dtypes, shapes,
/// offsets in range, matching dtype × shape, no overlaps), then tensors are read one at a time straight into their
/// destination, so loading a model needs about one model's worth of memory.
/// </summary>
public sealed class SafeTensorsFile : IDisposable
{
    /// <summary>Largest header accepted (the format's own limit is 100 MB).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    readonly SafeFileHandle _handle;
    readonly long _dataStart;
    MemoryMappedFile? _map;
    bool _mapFailed;

    /// <summary>The file path.</summary>
    public string Path { get; }
    /// <summary>Entries by key, in header order.</summary>
    public IReadOnlyDictionary<string, SafeTensorInfo> Entries { get; }
    /// <summary>The optional <c>__metadata__</c> map.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    SafeTensorsFile(string path, SafeFileHandle handle, long dataStart, Dictionary<string, SafeTensorInfo> entries, Dictionary<string, string> metadata)
    {
        Path = path; _handle = handle; _dataStart = dataStart; Entries = entries; Metadata = metadata;
    }

    /// <summary>Opens and validates <paramref name="path"/>; throws <see cref="CheckpointFormatException"/> naming the file and key.</summary>
    public static SafeTensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new CheckpointFormatException($"{path}: file not found.");
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        try
        {
            long fileLen = RandomAccess.GetLength(handle);
            if (fileLen < 8) throw new CheckpointFormatException($"{path}: {fileLen} bytes is too short for a safetensors file (needs an 8-byte header length).");
            Span<byte> lenBytes = stackalloc byte[8];
            RandomAccess.Read(handle, lenBytes, 0);
            ulong n = BitConverter.ToUInt64(lenBytes);
            if (n < 2 || n > MaxHeaderBytes) throw new CheckpointFormatException($"{path}: header length {n} is not between 2 and {MaxHeaderBytes} bytes.");
            if ((long)n > fileLen - 8) throw new CheckpointFormatException($"{path}: header length {n} runs past the end of the {fileLen}-byte file.");
            var header = new byte[n];
            ReadExactly(handle, header, 8, path);
            long bufferLen = fileLen - 8 - (long)n;
            var (entries, meta) = ParseHeader(header, bufferLen, path);
            return new SafeTensorsFile(path, handle, 8 + (long)n, entries, meta);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    static void ReadExactly(SafeFileHandle h, Span<byte> dst, long offset, string path)
    {
        while (dst.Length > 0)
        {
            int r = RandomAccess.Read(h, dst, offset);
            if (r <= 0) throw new CheckpointFormatException($"{path}: unexpected end of file at byte {offset}.");
            dst = dst[r..];
            offset += r;
        }
    }

    static (Dictionary<string, SafeTensorInfo>, Dictionary<string, string>) ParseHeader(byte[] header, long bufferLen, string path)
    {
        JsonDocument doc;
        try
        {
            _ = new UTF8Encoding(false, true).GetCharCount(header);
            doc = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (DecoderFallbackException e)
        {
            throw new CheckpointFormatException($"{path}: header is not valid UTF-8.", e);
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException($"{path}: header is not valid JSON ({e.Message}).", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new CheckpointFormatException($"{path}: header must be a JSON object.");
            var entries = new Dictionary<string, SafeTensorInfo>(StringComparer.Ordinal);
            var meta = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Name == "__metadata__")
                {
                    if (p.Value.ValueKind != JsonValueKind.Object) throw new CheckpointFormatException($"{path}: __metadata__ must be an object of strings.");
                    foreach (var m in p.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String) throw new CheckpointFormatException($"{path}: __metadata__.{m.Name} must be a string.");
                        meta[m.Name] = m.Value.GetString()!;
                    }
                    continue;
                }
                if (entries.ContainsKey(p.Name)) throw new CheckpointFormatException($"{path}: key '{p.Name}' appears twice.");
                entries[p.Name] = ParseEntry(p.Name, p.Value, bufferLen, path);
            }
            var sorted = entries.Values.Where(e => e.End > e.Begin).OrderBy(e => e.Begin).ToArray();
            for (int i = 1; i < sorted.Length; i++)
                if (sorted[i].Begin < sorted[i - 1].End)
                    throw new CheckpointFormatException($"{path}: tensors '{sorted[i - 1].Name}' and '{sorted[i].Name}' overlap (offsets {sorted[i - 1].Begin}..{sorted[i - 1].End} and {sorted[i].Begin}..{sorted[i].End}).");
            return (entries, meta);
        }
    }

    static SafeTensorInfo ParseEntry(string name, JsonElement e, long bufferLen, string path)
    {
        string where = $"{path}: tensor '{name}'";
        if (e.ValueKind != JsonValueKind.Object) throw new CheckpointFormatException($"{where}: entry must be an object.");
        if (!e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String) throw new CheckpointFormatException($"{where}: missing dtype.");
        ScalarType dtype = SafeTensorDType.Parse(dt.GetString()!) ?? throw new CheckpointFormatException($"{where}: unknown dtype '{dt.GetString()}'.");
        if (!e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array) throw new CheckpointFormatException($"{where}: missing shape.");
        var shape = new List<long>();
        long count = 1;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long v) || v < 0)
                throw new CheckpointFormatException($"{where}: shape entry {d} is not a non-negative integer.");
            shape.Add(v);
            if (shape.Count > 16) throw new CheckpointFormatException($"{where}: more than 16 dimensions.");
            try { count = checked(count * v); }
            catch (OverflowException) { throw new CheckpointFormatException($"{where}: shape {sh} is absurdly large."); }
        }
        if (!e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new CheckpointFormatException($"{where}: data_offsets must be [begin, end].");
        if (!off[0].TryGetInt64(out long begin) || !off[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw new CheckpointFormatException($"{where}: data_offsets {off} are invalid.");
        if (end > bufferLen) throw new CheckpointFormatException($"{where}: data_offsets end {end} is past the data buffer ({bufferLen} bytes).");
        long expect;
        try { expect = checked(count * SafeTensorDType.Size(dtype)); }
        catch (OverflowException) { throw new CheckpointFormatException($"{where}: shape is absurdly large."); }
        if (end - begin != expect)
            throw new CheckpointFormatException($"{where}: holds {end - begin} bytes but dtype {dt.GetString()} × shape {sh} needs {expect}.");
        return new SafeTensorInfo(name, dtype, shape.ToArray(), begin, end);
    }

    /// <summary>Reads tensor <paramref name="name"/> into a new CPU tensor of its stored dtype.</summary>
    public Tensor Read(string name)
    {
        var info = Info(name);
        var t = torch.empty(info.Shape, dtype: info.DType);
        try { ReadBytes(info, t); }
        catch { t.Dispose(); throw; }
        return t;
    }

    /// <summary>
    /// Reads rows [<paramref name="row0"/>, <paramref name="row0"/> + <paramref name="rows"/>) of tensor
    /// <paramref name="name"/> (along its first dimension) into a new CPU tensor in the stored dtype.
    /// </summary>
    public Tensor ReadRows(string name, long row0, long rows)
    {
        var info = Info(name);
        if (info.Shape.Length == 0 || row0 < 0 || rows < 0 || row0 + rows > info.Shape[0])
            throw new ArgumentOutOfRangeException(nameof(rows), $"{Path}: rows [{row0}, {row0 + rows}) of tensor '{name}' {info.ShapeText}.");
        var shape = info.Shape.ToArray();
        shape[0] = rows;
        long perRow = info.Shape[0] == 0 ? 0 : info.Count / info.Shape[0], elem = SafeTensorDType.Size(info.DType);
        var t = torch.empty(shape, dtype: info.DType);
        try
        {
            if (rows > 0 && perRow > 0)
            {
                using var flat = t.view(-1);
                ReadExactly(_handle, flat.bytes, _dataStart + info.Begin + row0 * perRow * elem, Path);
            }
        }
        catch { t.Dispose(); throw; }
        return t;
    }

    /// <summary>
    /// Reads rows [<paramref name="row0"/>, <paramref name="row0"/> + <c>destination.shape[0]</c>) of tensor
    /// <paramref name="name"/> (along its first dimension) into <paramref name="destination"/>, a contiguous CPU tensor
    /// of the stored dtype whose other dimensions match (a buffer reused across reads allocates nothing).
    /// </summary>
    public void ReadRowsInto(string name, long row0, Tensor destination)
    {
        var info = Info(name);
        long rows = destination.dim() == 0 ? -1 : destination.shape[0];
        if (info.Shape.Length == 0 || destination.dim() != info.Shape.Length || !destination.shape.Skip(1).SequenceEqual(info.Shape.Skip(1))
            || row0 < 0 || row0 + rows > info.Shape[0])
            throw new CheckpointFormatException($"{Path}: cannot read rows from {row0} into [{string.Join(", ", destination.shape)}] from tensor '{name}' {info.ShapeText}.");
        if (destination.device_type != DeviceType.CPU || destination.dtype != info.DType || !destination.is_contiguous())
            throw new ArgumentException($"{Path}: reading rows of '{name}' needs a contiguous CPU {SafeTensorDType.Name(info.DType)} tensor; got {destination.dtype} on {destination.device}.");
        long perRow = info.Count / info.Shape[0], elem = SafeTensorDType.Size(info.DType);
        if (rows == 0 || perRow == 0) return;
        using var flat = destination.view(-1);
        ReadExactly(_handle, flat.bytes, _dataStart + info.Begin + row0 * perRow * elem, Path);
    }

    /// <summary>
    /// Reads tensor <paramref name="name"/> into <paramref name="destination"/> (any device and float dtype; the
    /// shape must match). Reads straight into the destination's memory when it is a contiguous CPU tensor of the same dtype.
    /// </summary>
    public void ReadInto(string name, Tensor destination)
    {
        var info = Info(name);
        if (!info.Shape.SequenceEqual(destination.shape))
            throw new CheckpointFormatException($"{Path}: tensor '{name}' has shape {info.ShapeText} but the model expects [{string.Join(", ", destination.shape)}].");
        using var noGrad = torch.no_grad();
        if (destination.device_type == DeviceType.CPU && destination.dtype == info.DType && destination.is_contiguous())
        {
            ReadBytes(info, destination);
            return;
        }
        using var tmp = Read(name);
        destination.copy_(tmp);
    }

    /// <summary>Entry for <paramref name="name"/>, or an error naming the key.</summary>
    public SafeTensorInfo Info(string name) =>
        Entries.TryGetValue(name, out var i) ? i : throw new CheckpointFormatException($"{Path}: no tensor named '{name}'.");

    void ReadBytes(SafeTensorInfo info, Tensor dst)
    {
        const long Chunk = 1L << 30;
        long total = info.End - info.Begin;
        if (total == 0) return;
        using var flat = dst.view(-1);
        long elem = SafeTensorDType.Size(info.DType);
        long perChunk = Chunk / elem;
        for (long e0 = 0; e0 < info.Count; e0 += perChunk)
        {
            long n = Math.Min(perChunk, info.Count - e0);
            using var part = flat.narrow(0, e0, n);
            ReadExactly(_handle, part.bytes, _dataStart + info.Begin + e0 * elem, Path);
        }
    }

    /// <summary>
    /// A 1-D tensor over <paramref name="bytes"/> bytes of the data buffer from <paramref name="begin"/>, memory-mapped
    /// copy-on-write (see <see cref="MappedTensors"/>), or null when this file cannot be mapped.
    /// </summary>
    internal Tensor? Map(long begin, long bytes, ScalarType dtype)
    {
        if (_mapFailed) return null;
        if (_map is null)
        {
            try
            {
                _map = MemoryMappedFile.CreateFromFile(_handle, null, 0, MemoryMappedFileAccess.CopyOnWrite, HandleInheritability.None, leaveOpen: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
            {
                _mapFailed = true;
                return null;
            }
        }
        return MappedTensors.Map(_map, _dataStart + begin, bytes, dtype);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _map?.Dispose();
        _handle.Dispose();
    }
}

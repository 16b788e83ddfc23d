// GGUF v3 container: writer and reader (little-endian).
//
// Layout: "GGUF", u32 version (3), u64 tensor count, u64 key/value count; the key/values (string key, u32 value type,
// value; an array is u32 element type, u64 length, elements; a string is u64 byte length + UTF-8 bytes); the tensor
// infos (string name, u32 dimension count, u64 dimensions with the fastest-varying first, u32 ggml type, u64 offset
// relative to the data section); zero padding to the alignment (key general.alignment, 32 when absent); the data
// section, each tensor starting at a multiple of the alignment.
using System.Buffers.Binary;
using System.Text;

namespace Llama3.Multimodal.Bench.Gguf;

/// <summary>The ggml tensor types this bench writes and reads.</summary>
public enum GgmlType : uint
{
    /// <summary>IEEE float32.</summary>
    F32 = 0,
    /// <summary>IEEE float16.</summary>
    F16 = 1,
    /// <summary>Blocks of 32 weights: one float16 scale, then 32 signed bytes.</summary>
    Q8_0 = 8,
    /// <summary>bfloat16.</summary>
    BF16 = 30,
}

/// <summary>GGUF metadata value types.</summary>
public enum GgufValueType : uint
{
    /// <summary>u8.</summary>
    UInt8 = 0,
    /// <summary>i8.</summary>
    Int8 = 1,
    /// <summary>u16.</summary>
    UInt16 = 2,
    /// <summary>i16.</summary>
    Int16 = 3,
    /// <summary>u32.</summary>
    UInt32 = 4,
    /// <summary>i32.</summary>
    Int32 = 5,
    /// <summary>f32.</summary>
    Float32 = 6,
    /// <summary>one byte, 0 or 1.</summary>
    Bool = 7,
    /// <summary>u64 length + UTF-8.</summary>
    String = 8,
    /// <summary>u32 element type + u64 count + elements.</summary>
    Array = 9,
    /// <summary>u64.</summary>
    UInt64 = 10,
    /// <summary>i64.</summary>
    Int64 = 11,
    /// <summary>f64.</summary>
    Float64 = 12,
}

/// <summary>Sizes of the tensor types.</summary>
public static class GgmlTypes
{
    /// <summary>Bytes of a row-major tensor whose fastest dimension is <paramref name="ne0"/>, with <paramref name="count"/> elements in all.</summary>
    public static long ByteSize(GgmlType type, long ne0, long count) => type switch
    {
        GgmlType.F32 => count * 4,
        GgmlType.F16 or GgmlType.BF16 => count * 2,
        GgmlType.Q8_0 => ne0 % Q8Block.Size == 0
            ? count / Q8Block.Size * Q8Block.Bytes
            : throw new ArgumentException($"Q8_0 needs rows that are a multiple of {Q8Block.Size} elements; this one has {ne0}."),
        _ => throw new ArgumentException($"unsupported ggml type {type}"),
    };
}

/// <summary>One tensor of a GGUF file: name, dimensions (fastest-varying first, as GGUF stores them), type, data offset.</summary>
public sealed record GgufTensorInfo(string Name, long[] Dims, GgmlType Type, long Offset)
{
    /// <summary>Element count.</summary>
    public long Count => Dims.Aggregate(1L, (a, b) => a * b);
    /// <summary>Bytes of the data.</summary>
    public long ByteSize => GgmlTypes.ByteSize(Type, Dims[0], Count);
}

/// <summary>
/// Writes a GGUF v3 file: add the metadata and the tensor table first, then <see cref="Write"/> streams each tensor's
/// bytes from a callback in table order. The file is written under a temporary name and renamed when complete.
/// </summary>
public sealed class GgufWriter
{
    /// <summary>Data alignment (also written as general.alignment).</summary>
    public const int Alignment = 32;

    readonly List<(string Key, GgufValueType Type, object Value, GgufValueType ElementType)> _kv = new();
    readonly List<(string Name, long[] Dims, GgmlType Type)> _tensors = new();

    /// <summary>Adds a string value.</summary>
    public void Add(string key, string value) => _kv.Add((key, GgufValueType.String, value, default));
    /// <summary>Adds a u32 value.</summary>
    public void AddUInt32(string key, uint value) => _kv.Add((key, GgufValueType.UInt32, value, default));
    /// <summary>Adds an f32 value.</summary>
    public void AddFloat32(string key, float value) => _kv.Add((key, GgufValueType.Float32, value, default));
    /// <summary>Adds a boolean.</summary>
    public void AddBool(string key, bool value) => _kv.Add((key, GgufValueType.Bool, value, default));
    /// <summary>Adds an array of strings.</summary>
    public void Add(string key, IReadOnlyList<string> values) => _kv.Add((key, GgufValueType.Array, values, GgufValueType.String));
    /// <summary>Adds an array of i32.</summary>
    public void Add(string key, IReadOnlyList<int> values) => _kv.Add((key, GgufValueType.Array, values, GgufValueType.Int32));

    /// <summary>Adds a tensor to the table; <paramref name="torchShape"/> is the row-major (PyTorch) shape.</summary>
    public void AddTensor(string name, long[] torchShape, GgmlType type)
    {
        if (Encoding.UTF8.GetByteCount(name) > 64) throw new ArgumentException($"GGUF tensor names are at most 64 bytes: '{name}'.");
        if (_tensors.Any(t => t.Name == name)) throw new ArgumentException($"duplicate tensor '{name}'.");
        _tensors.Add((name, torchShape.Reverse().ToArray(), type));
    }

    /// <summary>
    /// Writes the file. <paramref name="writeData"/> is called once per tensor, in the order added, and must write exactly
    /// the tensor's byte size to the stream it is given.
    /// </summary>
    public void Write(string path, Action<string, Stream> writeData)
    {
        string tmp = path + ".tmp";
        try
        {
            using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                var w = new BinaryWriter(fs, Encoding.UTF8, leaveOpen: true);
                w.Write(0x46554747u); // "GGUF"
                w.Write(3u);
                w.Write((ulong)_tensors.Count);
                w.Write((ulong)_kv.Count);
                foreach (var (key, type, value, elem) in _kv)
                {
                    WriteString(w, key);
                    w.Write((uint)type);
                    WriteValue(w, type, value, elem);
                }
                long offset = 0;
                var offsets = new long[_tensors.Count];
                for (int i = 0; i < _tensors.Count; i++)
                {
                    var (name, dims, type) = _tensors[i];
                    WriteString(w, name);
                    w.Write((uint)dims.Length);
                    foreach (long d in dims) w.Write((ulong)d);
                    w.Write((uint)type);
                    w.Write((ulong)offset);
                    offsets[i] = offset;
                    offset = Align(offset + GgmlTypes.ByteSize(type, dims[0], dims.Aggregate(1L, (a, b) => a * b)));
                }
                w.Flush();
                Pad(fs);
                long dataStart = fs.Position;
                for (int i = 0; i < _tensors.Count; i++)
                {
                    var (name, dims, type) = _tensors[i];
                    long expect = GgmlTypes.ByteSize(type, dims[0], dims.Aggregate(1L, (a, b) => a * b));
                    if (fs.Position - dataStart != offsets[i]) throw new InvalidOperationException($"tensor '{name}' would start at {fs.Position - dataStart}, not {offsets[i]}.");
                    long before = fs.Position;
                    writeData(name, fs);
                    if (fs.Position - before != expect)
                        throw new InvalidOperationException($"tensor '{name}': wrote {fs.Position - before} bytes, expected {expect}.");
                    Pad(fs);
                }
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            if (File.Exists(tmp)) File.Delete(tmp);
            throw;
        }
    }

    static long Align(long x) => (x + Alignment - 1) / Alignment * Alignment;

    static void Pad(Stream s)
    {
        long pad = Align(s.Position) - s.Position;
        for (long i = 0; i < pad; i++) s.WriteByte(0);
    }

    static void WriteString(BinaryWriter w, string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)b.Length);
        w.Write(b);
    }

    static void WriteValue(BinaryWriter w, GgufValueType type, object value, GgufValueType elem)
    {
        switch (type)
        {
            case GgufValueType.String: WriteString(w, (string)value); break;
            case GgufValueType.UInt32: w.Write((uint)value); break;
            case GgufValueType.Int32: w.Write((int)value); break;
            case GgufValueType.Float32: w.Write((float)value); break;
            case GgufValueType.Bool: w.Write((byte)((bool)value ? 1 : 0)); break;
            case GgufValueType.Array:
                w.Write((uint)elem);
                if (elem == GgufValueType.String)
                {
                    var list = (IReadOnlyList<string>)value;
                    w.Write((ulong)list.Count);
                    foreach (var s in list) WriteString(w, s);
                }
                else
                {
                    var list = (IReadOnlyList<int>)value;
                    w.Write((ulong)list.Count);
                    foreach (int v in list) w.Write(v);
                }
                break;
            default: throw new ArgumentException($"unsupported value type {type}");
        }
    }
}

/// <summary>Reads a GGUF v3 file's metadata and tensor table, and any tensor's bytes.</summary>
public sealed class GgufReader : IDisposable
{
    readonly FileStream _fs;

    /// <summary>The file.</summary>
    public string Path { get; }
    /// <summary>Format version (3).</summary>
    public uint Version { get; }
    /// <summary>Metadata: scalars as their .NET type (uint, int, float, bool, string, ulong, …), arrays as object[].</summary>
    public IReadOnlyDictionary<string, object> Metadata { get; }
    /// <summary>Metadata keys in file order.</summary>
    public IReadOnlyList<string> Keys { get; }
    /// <summary>Tensors in file order.</summary>
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }
    /// <summary>File offset of the data section.</summary>
    public long DataStart { get; }
    /// <summary>Data alignment in force.</summary>
    public int Alignment { get; }

    GgufReader(string path, FileStream fs, uint version, Dictionary<string, object> md, List<string> keys, List<GgufTensorInfo> tensors, long dataStart, int alignment)
    {
        Path = path; _fs = fs; Version = version; Metadata = md; Keys = keys; Tensors = tensors; DataStart = dataStart; Alignment = alignment;
    }

    /// <summary>Opens and validates <paramref name="path"/>: magic, version, value types, tensor offsets and sizes.</summary>
    public static GgufReader Open(string path)
    {
        var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        try
        {
            var r = new BinaryReader(fs, Encoding.UTF8, leaveOpen: true);
            uint magic = r.ReadUInt32();
            if (magic != 0x46554747u) throw new InvalidDataException($"{path}: not a GGUF file (magic 0x{magic:x8}).");
            uint version = r.ReadUInt32();
            if (version != 3) throw new InvalidDataException($"{path}: GGUF version {version}; this reader knows version 3.");
            ulong nTensors = r.ReadUInt64(), nKv = r.ReadUInt64();
            if (nTensors > 1_000_000 || nKv > 1_000_000) throw new InvalidDataException($"{path}: absurd counts ({nTensors} tensors, {nKv} keys).");
            var md = new Dictionary<string, object>(StringComparer.Ordinal);
            var keys = new List<string>();
            for (ulong i = 0; i < nKv; i++)
            {
                string key = ReadString(r, path);
                var type = (GgufValueType)r.ReadUInt32();
                if (!md.TryAdd(key, ReadValue(r, type, path, key))) throw new InvalidDataException($"{path}: duplicate key '{key}'.");
                keys.Add(key);
            }
            int alignment = md.TryGetValue("general.alignment", out var a) ? checked((int)(uint)a) : 32;
            if (alignment <= 0 || alignment % 8 != 0) throw new InvalidDataException($"{path}: general.alignment {alignment} is not a positive multiple of 8.");
            var tensors = new List<GgufTensorInfo>();
            for (ulong i = 0; i < nTensors; i++)
            {
                string name = ReadString(r, path);
                uint nd = r.ReadUInt32();
                if (nd is 0 or > 4) throw new InvalidDataException($"{path}: tensor '{name}' has {nd} dimensions.");
                var dims = new long[nd];
                for (int d = 0; d < nd; d++) dims[d] = checked((long)r.ReadUInt64());
                var type = (GgmlType)r.ReadUInt32();
                if (!Enum.IsDefined(type)) throw new InvalidDataException($"{path}: tensor '{name}' has ggml type {(uint)type}, which this reader does not know.");
                long off = checked((long)r.ReadUInt64());
                if (off % alignment != 0) throw new InvalidDataException($"{path}: tensor '{name}' offset {off} is not aligned to {alignment}.");
                tensors.Add(new GgufTensorInfo(name, dims, type, off));
            }
            long pos = fs.Position;
            long dataStart = (pos + alignment - 1) / alignment * alignment;
            foreach (var t in tensors)
                if (dataStart + t.Offset + t.ByteSize > fs.Length)
                    throw new InvalidDataException($"{path}: tensor '{t.Name}' ends at {dataStart + t.Offset + t.ByteSize}, past the end of the file ({fs.Length}).");
            return new GgufReader(path, fs, version, md, keys, tensors, dataStart, alignment);
        }
        catch
        {
            fs.Dispose();
            throw;
        }
    }

    /// <summary>The tensor named <paramref name="name"/>, or an error naming it.</summary>
    public GgufTensorInfo Tensor(string name) =>
        Tensors.FirstOrDefault(t => t.Name == name) ?? throw new KeyNotFoundException($"{Path}: no tensor '{name}'.");

    /// <summary>Reads a tensor's bytes.</summary>
    public byte[] ReadBytes(GgufTensorInfo t)
    {
        var b = new byte[t.ByteSize];
        _fs.Seek(DataStart + t.Offset, SeekOrigin.Begin);
        _fs.ReadExactly(b);
        return b;
    }

    /// <summary>Reads a tensor as float32 (F32, F16, BF16 and Q8_0 are decoded).</summary>
    public float[] ReadFloats(GgufTensorInfo t)
    {
        var b = ReadBytes(t);
        var f = new float[t.Count];
        switch (t.Type)
        {
            case GgmlType.F32: Buffer.BlockCopy(b, 0, f, 0, b.Length); break;
            case GgmlType.F16:
                for (long i = 0; i < f.Length; i++) f[i] = (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan((int)(2 * i))));
                break;
            case GgmlType.BF16:
                for (long i = 0; i < f.Length; i++) f[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan((int)(2 * i))) << 16);
                break;
            case GgmlType.Q8_0: Q8Block.Dequantize(b, f); break;
            default: throw new InvalidDataException($"{Path}: cannot decode type {t.Type}.");
        }
        return f;
    }

    static string ReadString(BinaryReader r, string path)
    {
        ulong n = r.ReadUInt64();
        if (n > 1 << 24) throw new InvalidDataException($"{path}: string of {n} bytes at offset {r.BaseStream.Position - 8}.");
        return Encoding.UTF8.GetString(r.ReadBytes((int)n));
    }

    static object ReadValue(BinaryReader r, GgufValueType type, string path, string key) => type switch
    {
        GgufValueType.UInt8 => r.ReadByte(),
        GgufValueType.Int8 => r.ReadSByte(),
        GgufValueType.UInt16 => r.ReadUInt16(),
        GgufValueType.Int16 => r.ReadInt16(),
        GgufValueType.UInt32 => r.ReadUInt32(),
        GgufValueType.Int32 => r.ReadInt32(),
        GgufValueType.Float32 => r.ReadSingle(),
        GgufValueType.Bool => r.ReadByte() switch
        {
            0 => false,
            1 => true,
            var v => throw new InvalidDataException($"{path}: key '{key}' holds boolean byte {v}."),
        },
        GgufValueType.String => ReadString(r, path),
        GgufValueType.UInt64 => r.ReadUInt64(),
        GgufValueType.Int64 => r.ReadInt64(),
        GgufValueType.Float64 => r.ReadDouble(),
        GgufValueType.Array => ReadArray(r, path, key),
        _ => throw new InvalidDataException($"{path}: key '{key}' has unknown value type {(uint)type}."),
    };

    static object[] ReadArray(BinaryReader r, string path, string key)
    {
        var elem = (GgufValueType)r.ReadUInt32();
        ulong n = r.ReadUInt64();
        if (n > 100_000_000) throw new InvalidDataException($"{path}: key '{key}' has an array of {n} elements.");
        var a = new object[n];
        for (ulong i = 0; i < n; i++) a[i] = ReadValue(r, elem, path, key);
        return a;
    }

    /// <inheritdoc/>
    public void Dispose() => _fs.Dispose();
}

/// <summary>
/// GGUF Q8_0: each block of 32 consecutive weights of a row is stored as a float16 scale d = max|x| / 127 followed by
/// the 32 values round(x / d) as signed bytes (34 bytes per block). A weight decodes as d · q.
/// </summary>
public static class Q8Block
{
    /// <summary>Weights per block.</summary>
    public const int Size = 32;
    /// <summary>Bytes per block.</summary>
    public const int Bytes = 2 + Size;

    /// <summary>Quantizes <paramref name="src"/> (length a multiple of 32) into <paramref name="dst"/> (length / 32 · 34 bytes).</summary>
    public static void Quantize(ReadOnlySpan<float> src, Span<byte> dst)
    {
        if (src.Length % Size != 0) throw new ArgumentException($"Q8_0 input length {src.Length} is not a multiple of {Size}.");
        if (dst.Length != src.Length / Size * Bytes) throw new ArgumentException("Q8_0 output has the wrong length.");
        for (int b = 0; b < src.Length / Size; b++)
        {
            var x = src.Slice(b * Size, Size);
            var o = dst.Slice(b * Bytes, Bytes);
            float amax = 0;
            foreach (float v in x) amax = Math.Max(amax, Math.Abs(v));
            float d = amax / 127f;
            float id = d != 0 ? 1f / d : 0f;
            BinaryPrimitives.WriteUInt16LittleEndian(o, BitConverter.HalfToUInt16Bits((Half)d));
            for (int j = 0; j < Size; j++) o[2 + j] = (byte)(sbyte)MathF.Round(x[j] * id, MidpointRounding.AwayFromZero);
        }
    }

    /// <summary>Decodes Q8_0 blocks into floats.</summary>
    public static void Dequantize(ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (src.Length % Bytes != 0 || dst.Length != src.Length / Bytes * Size) throw new ArgumentException("Q8_0 input/output lengths disagree.");
        for (int b = 0; b < src.Length / Bytes; b++)
        {
            var s = src.Slice(b * Bytes, Bytes);
            float d = (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(s));
            for (int j = 0; j < Size; j++) dst[b * Size + j] = d * (sbyte)s[2 + j];
        }
    }
}

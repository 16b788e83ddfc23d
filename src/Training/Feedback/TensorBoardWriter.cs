using System.Buffers.Binary;
using System.Text;

namespace Llama3.Multimodal.Training;

/// <summary>
/// Writes TensorBoard event files (<c>events.out.tfevents.{time}.{host}</c>): TFRecord framing (u64 length, masked
/// CRC-32C of the length, payload, masked CRC-32C of the payload) around <c>Event</c> protobufs — first
/// <c>file_version = "brain.Event:2"</c>, then one <c>Summary</c> with a <c>simple_value</c> per scalar.
/// </summary>
public sealed class TensorBoardWriter : IDisposable
{
    readonly FileStream _file;

    /// <summary>The event file path.</summary>
    public string Path { get; }

    /// <summary>Creates a new event file in <paramref name="directory"/>.</summary>
    public TensorBoardWriter(string directory)
    {
        Directory.CreateDirectory(directory);
        long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        string name = $"events.out.tfevents.{now}.{Environment.MachineName}";
        for (int k = 1; File.Exists(System.IO.Path.Combine(directory, name)); k++) name = $"events.out.tfevents.{now}.{Environment.MachineName}.{k}";
        Path = System.IO.Path.Combine(directory, name);
        _file = new FileStream(Path, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
        var ev = new List<byte>();
        Fixed64Field(ev, 1, Wall());
        BytesField(ev, 3, Encoding.UTF8.GetBytes("brain.Event:2"));
        WriteRecord(ev.ToArray());
    }

    static double Wall() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;

    /// <summary>Appends one scalar (TensorBoard "Scalars" tab) at <paramref name="step"/>.</summary>
    public void AddScalar(string tag, double value, long step)
    {
        var val = new List<byte>();
        BytesField(val, 1, Encoding.UTF8.GetBytes(tag));
        Tag(val, 2, 5); Span<byte> f = stackalloc byte[4]; BinaryPrimitives.WriteSingleLittleEndian(f, (float)value); val.AddRange(f.ToArray());
        var summary = new List<byte>();
        BytesField(summary, 1, val.ToArray());
        var ev = new List<byte>();
        Fixed64Field(ev, 1, Wall());
        Tag(ev, 2, 0); Varint(ev, (ulong)step);
        BytesField(ev, 5, summary.ToArray());
        WriteRecord(ev.ToArray());
    }

    /// <summary>Flushes to disk.</summary>
    public void Flush() => _file.Flush(true);

    void WriteRecord(byte[] data)
    {
        Span<byte> len = stackalloc byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)data.Length);
        Span<byte> crc = stackalloc byte[4];
        _file.Write(len);
        BinaryPrimitives.WriteUInt32LittleEndian(crc, Crc32C.Masked(len)); _file.Write(crc);
        _file.Write(data);
        BinaryPrimitives.WriteUInt32LittleEndian(crc, Crc32C.Masked(data)); _file.Write(crc);
    }

    static void Tag(List<byte> b, int field, int wire) => Varint(b, (ulong)(field << 3 | wire));
    static void Varint(List<byte> b, ulong v) { while (v >= 0x80) { b.Add((byte)(v | 0x80)); v >>= 7; } b.Add((byte)v); }
    static void BytesField(List<byte> b, int field, byte[] data) { Tag(b, field, 2); Varint(b, (ulong)data.Length); b.AddRange(data); }
    static void Fixed64Field(List<byte> b, int field, double v)
    {
        Tag(b, field, 1);
        Span<byte> s = stackalloc byte[8]; BinaryPrimitives.WriteDoubleLittleEndian(s, v); b.AddRange(s.ToArray());
    }

    /// <summary>Flushes and closes the file.</summary>
    public void Dispose() { _file.Flush(true); _file.Dispose(); }
}

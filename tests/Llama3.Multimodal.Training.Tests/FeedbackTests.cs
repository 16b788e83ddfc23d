using System.Buffers.Binary;
using System.Text;
using Llama3.Multimodal.Training;

namespace Llama3.Multimodal.Training.Tests;

public class FeedbackTests
{
    [Fact]
    public void Crc32CMatchesTheStandardCheckValue()
    {
        Assert.Equal(0xE3069283u, Crc32C.Compute(Encoding.ASCII.GetBytes("123456789")));
        Assert.Equal(0u, Crc32C.Compute(ReadOnlySpan<byte>.Empty));
    }

    [Fact]
    public void TensorBoardFileParsesBackWithValidCrcs()
    {
        string dir = TestRuns.TempDir(), path;
        using (var w = new TensorBoardWriter(dir))
        {
            w.AddScalar("train/loss", 2.5, 1);
            w.AddScalar("train/lr", 1e-4, 300);
            path = w.Path;
        }
        Assert.StartsWith("events.out.tfevents.", Path.GetFileName(path));
        byte[] data = File.ReadAllBytes(path);
        var events = new List<byte[]>();
        int pos = 0;
        while (pos < data.Length)
        {
            var len = data.AsSpan(pos, 8);
            Assert.Equal(Crc32C.Masked(len), BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(pos + 8, 4)));
            int n = (int)BinaryPrimitives.ReadUInt64LittleEndian(len);
            var payload = data.AsSpan(pos + 12, n);
            Assert.Equal(Crc32C.Masked(payload), BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(pos + 12 + n, 4)));
            events.Add(payload.ToArray());
            pos += 12 + n + 4;
        }
        Assert.Equal(3, events.Count);
        var first = Fields(events[0]);
        Assert.Equal("brain.Event:2", Encoding.UTF8.GetString((byte[])first[3]));
        Assert.True(BitConverter.Int64BitsToDouble((long)(ulong)first[1]) > 1.6e9);   // wall_time, seconds
        var second = Fields(events[1]);
        Assert.Equal(1UL, (ulong)second[2]);
        var summary = Fields((byte[])second[5]);
        var value = Fields((byte[])summary[1]);
        Assert.Equal("train/loss", Encoding.UTF8.GetString((byte[])value[1]));
        Assert.Equal(2.5f, BitConverter.Int32BitsToSingle((int)(uint)value[2]));
        var third = Fields(events[2]);
        Assert.Equal(300UL, (ulong)third[2]);
        Assert.Equal(1e-4f, BitConverter.Int32BitsToSingle((int)(uint)Fields((byte[])Fields((byte[])third[5])[1])[2]));
    }

    /// <summary>A minimal protobuf reader: field number → value (varint/fixed64 as ulong, fixed32 as uint, bytes as byte[]).</summary>
    static Dictionary<int, object> Fields(byte[] msg)
    {
        var d = new Dictionary<int, object>();
        int i = 0;
        ulong Varint() { ulong v = 0; int s = 0; while (true) { byte b = msg[i++]; v |= (ulong)(b & 0x7F) << s; if (b < 0x80) return v; s += 7; } }
        while (i < msg.Length)
        {
            ulong key = Varint(); int field = (int)(key >> 3), wire = (int)(key & 7);
            switch (wire)
            {
                case 0: d[field] = Varint(); break;
                case 1: d[field] = BinaryPrimitives.ReadUInt64LittleEndian(msg.AsSpan(i, 8)); i += 8; break;
                case 2: { int n = (int)Varint(); d[field] = msg.AsSpan(i, n).ToArray(); i += n; break; }
                case 5: d[field] = BinaryPrimitives.ReadUInt32LittleEndian(msg.AsSpan(i, 4)); i += 4; break;
                default: throw new InvalidDataException($"wire type {wire}");
            }
        }
        return d;
    }
}

using System.Text;
using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text.Tests;

public class SafeTensorsTests
{
    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    public void WriteReadIsBitExact(ScalarType dt)
    {
        string dir = TestModels.TempDir();
        var g = new Generator(3, CPU);
        var tensors = new Dictionary<string, Tensor>
        {
            ["a.weight"] = randn(new long[] { 7, 5 }, generator: g).to_type(dt),
            ["b"] = randn(new long[] { 3 }, generator: g).to_type(dt),
            ["empty"] = zeros(new long[] { 0, 4 }, dtype: dt),
            ["scalar"] = tensor(1.5f).to_type(dt),
        };
        string path = Path.Combine(dir, "x.safetensors");
        SafeTensorsWriter.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        using var f = SafeTensorsFile.Open(path);
        Assert.Equal("pt", f.Metadata["format"]);
        foreach (var (k, v) in tensors)
        {
            using var r = f.Read(k);
            Assert.Equal(dt, r.dtype);
            Assert.Equal(v.shape, r.shape);
            Assert.True(v.bytes.SequenceEqual(r.bytes.ToArray()), k);
        }
        Assert.Empty(Directory.GetFiles(dir, "*.tmp"));
    }

    [Fact]
    public void ShardedWriteReadIsBitExact()
    {
        string dir = TestModels.TempDir();
        var g = new Generator(5, CPU);
        var src = Enumerable.Range(0, 6).ToDictionary(i => $"t{i}", i => randn(new long[] { 64, 32 }, generator: g));
        SafeTensorsWriter.WriteSharded(dir, src.Select(kv => new TensorToWrite(kv.Key, kv.Value.shape, ScalarType.Float32, () => kv.Value, false)).ToList(), 20_000);
        Assert.True(File.Exists(Path.Combine(dir, "model.safetensors.index.json")));
        Assert.True(Directory.GetFiles(dir, "model-*-of-*.safetensors").Length >= 3);
        using var r = CheckpointReader.Open(dir);
        Assert.Equal(6, r.Keys.Count);
        foreach (var (k, v) in src)
        {
            using var t = r.Read(k);
            Assert.True(v.equal(t).all().item<bool>());
        }
    }

    static string WriteRaw(string header, int dataBytes, ulong? lengthOverride = null)
    {
        string p = Path.Combine(TestModels.TempDir(), "bad.safetensors");
        byte[] h = Encoding.UTF8.GetBytes(header);
        using var fs = File.Create(p);
        fs.Write(BitConverter.GetBytes(lengthOverride ?? (ulong)h.Length));
        fs.Write(h);
        fs.Write(new byte[dataBytes]);
        return p;
    }

    [Theory]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "past the data buffer")]
    [InlineData("{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "needs 12")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,8]}}", 8, "non-negative")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "invalid")]
    [InlineData("[1,2,3]", 0, "must be a JSON object")]
    [InlineData("{not json", 0, "not valid JSON")]
    [InlineData("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,8]}}", 8, "absurdly large")]
    public void CorruptHeadersAreClearErrors(string header, int data, string expect)
    {
        string p = WriteRaw(header, data);
        var e = Assert.Throws<CheckpointFormatException>(() => SafeTensorsFile.Open(p));
        Assert.Contains(expect, e.Message);
        Assert.Contains(p, e.Message);
    }

    [Fact]
    public void HugeOrTruncatedHeaderLengthIsRejectedWithoutAllocating()
    {
        var e = Assert.Throws<CheckpointFormatException>(() => SafeTensorsFile.Open(WriteRaw("{}", 0, 100UL << 30)));
        Assert.Contains("header length", e.Message);
        e = Assert.Throws<CheckpointFormatException>(() => SafeTensorsFile.Open(WriteRaw("{}", 0, 1000)));
        Assert.Contains("past the end", e.Message);
        string tiny = Path.Combine(TestModels.TempDir(), "t.safetensors");
        File.WriteAllBytes(tiny, new byte[] { 1, 2, 3 });
        Assert.Throws<CheckpointFormatException>(() => SafeTensorsFile.Open(tiny));
    }

    [Fact]
    public void FailedWriteKeepsTheOldFile()
    {
        string dir = TestModels.TempDir();
        string path = Path.Combine(dir, "m.safetensors");
        SafeTensorsWriter.Save(path, new Dictionary<string, Tensor> { ["x"] = ones(3) });
        byte[] before = File.ReadAllBytes(path);
        var bad = new[] { new TensorToWrite("x", new long[] { 3 }, ScalarType.Float32, () => throw new IOException("disk on fire")) };
        Assert.Throws<IOException>(() => SafeTensorsWriter.Write(path, bad));
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Empty(Directory.GetFiles(dir, "*.tmp", SearchOption.AllDirectories).Concat(Directory.GetFiles(dir, ".*")));
    }
}

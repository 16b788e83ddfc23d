using System.Diagnostics;
using System.Text;
using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text.Tests;

/// <summary>
/// Seeded mutation fuzzing of the parsers that read user files: every mutated input must either parse or fail with
/// our own documented exception type, quickly, without the process crashing.
/// </summary>
public class FuzzTests
{
    static byte[] Mutate(byte[] src, Random rng)
    {
        var b = (byte[])src.Clone();
        switch (rng.Next(6))
        {
            case 0: // flip bits
                for (int i = 0, n = rng.Next(1, 8); i < n; i++) b[rng.Next(b.Length)] ^= (byte)(1 << rng.Next(8));
                return b;
            case 1: // truncate
                return b[..rng.Next(b.Length)];
            case 2: // overwrite with random bytes
                for (int i = 0, n = rng.Next(1, 16); i < n; i++) b[rng.Next(b.Length)] = (byte)rng.Next(256);
                return b;
            case 3: // replace a digit (sizes, offsets, ranks)
                {
                    var digits = Enumerable.Range(0, b.Length).Where(i => b[i] >= '0' && b[i] <= '9').ToArray();
                    if (digits.Length > 0) b[digits[rng.Next(digits.Length)]] = (byte)('0' + rng.Next(10));
                    return b;
                }
            case 4: // duplicate a slice
                {
                    int s = rng.Next(b.Length), len = rng.Next(1, Math.Min(64, b.Length - s + 1));
                    return b[..s].Concat(b.Skip(s).Take(len)).Concat(b[s..]).ToArray();
                }
            default: // insert structural characters
                {
                    int s = rng.Next(b.Length);
                    byte[] ins = Encoding.ASCII.GetBytes(new[] { "{", "}", "[", "]", "\"", ",", ":", "-1", "1e999", "NaN", "null" }[rng.Next(11)]);
                    return b[..s].Concat(ins).Concat(b[s..]).ToArray();
                }
        }
    }

    static void Run(byte[] seed, int count, int rngSeed, string ext, Action<string> parse, Type expected)
    {
        string dir = TestModels.TempDir();
        var rng = new Random(rngSeed);
        long worst = 0;
        for (int i = 0; i < count; i++)
        {
            string path = Path.Combine(dir, $"f{i % 8}{ext}");
            byte[] input = Mutate(seed, rng);
            File.WriteAllBytes(path, input);
            var sw = Stopwatch.StartNew();
            try { parse(path); }
            catch (Exception e) when (e.GetType() == expected) { }
            catch (Exception e)
            {
                Assert.Fail($"input {i} (seed {rngSeed}) raised {e.GetType().Name}: {e.Message}");
            }
            worst = Math.Max(worst, sw.ElapsedMilliseconds);
        }
        Assert.True(worst < 5000, $"slowest input took {worst} ms");
    }

    [Fact]
    public void MutatedSafetensorsFilesFailCleanly()
    {
        string p = Path.Combine(TestModels.TempDir(), "seed.safetensors");
        SafeTensorsWriter.Save(p, new Dictionary<string, Tensor> { ["a.weight"] = randn(4, 3), ["b"] = ones(5).to_type(ScalarType.BFloat16), ["c"] = zeros(2, 2, 2) },
            new Dictionary<string, string> { ["format"] = "pt" });
        Run(File.ReadAllBytes(p), 3000, 1, ".safetensors", path =>
        {
            using var f = SafeTensorsFile.Open(path);
            foreach (var k in f.Entries.Keys) f.Read(k).Dispose();
        }, typeof(CheckpointFormatException));
    }

    [Fact]
    public void MutatedConfigsFailCleanly()
    {
        byte[] seed = Encoding.UTF8.GetBytes(LlamaConfigJson.ToHuggingFace(TextPresets.Get("tiny")).ToJsonString());
        Run(seed, 3000, 2, ".json", path => LlamaConfigJson.ReadHuggingFace(path), typeof(ConfigException));
        byte[] meta = Encoding.UTF8.GetBytes(LlamaConfigJson.ToMeta(TextPresets.Get("llama3.1-8b")).ToJsonString());
        Run(meta, 2000, 3, ".json", path => LlamaConfigJson.ReadMeta(path), typeof(ConfigException));
    }

    [Fact]
    public void MutatedRanksFilesFailCleanly()
    {
        // A small but complete byte-level vocabulary: the 256 single bytes plus a few merges.
        var sb = new StringBuilder();
        int r = 0;
        for (int b = 0; b < 256; b++) sb.Append(Convert.ToBase64String(new[] { (byte)b })).Append(' ').Append(r++).Append('\n');
        foreach (var m in new[] { "th", "he", "the", "in", " t", "er" }) sb.Append(Convert.ToBase64String(Encoding.ASCII.GetBytes(m))).Append(' ').Append(r++).Append('\n');
        Run(Encoding.ASCII.GetBytes(sb.ToString()), 1500, 4, ".model", path =>
        {
            var t = Llama3Tokenizer.FromFile(path);
            Assert.Equal("the other", t.Decode(t.Encode("the other")));
        }, typeof(TokenizerFormatException));
    }
}

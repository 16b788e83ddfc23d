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
    static void Run(byte[] seed, int count, int rngSeed, string ext, Action<string> parse, Type expected) =>
        Llama3.Multimodal.Tests.Shared.Fuzz.Run(seed, count, rngSeed, ext, parse, expected);

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

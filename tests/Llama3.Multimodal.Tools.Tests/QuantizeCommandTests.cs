using System.Text.Json.Nodes;
using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Tools.Tests;

using static CliRunner;

public class QuantizeCommandTests
{
    [Fact]
    public void QuantizeWritesAFolderThatGeneratesLikeQuantizingAtLoad()
    {
        string dir = Temp(), q8 = Temp();
        Assert.Equal(0, Mm("init", "--config", "tiny", "--seed", "3", "--out", dir).Code);
        var r = Mm("quantize", "--model", dir, "--to", "q8", "--out", q8);
        Assert.True(r.Code == 0, r.Err);
        Assert.Equal("q8_0", (string)JsonNode.Parse(File.ReadAllText(Path.Combine(q8, "config.json")))!["quantization_config"]!["quant_method"]!);
        Assert.True(File.Exists(Path.Combine(q8, "tokenizer.model")));
        using (var reader = CheckpointReader.Open(q8))
            Assert.Equal(Text.SafeTensorDType.Parse("I8"), reader.Info("model.layers.0.mlp.up_proj.weight").DType);
        // The saved folder and load-time quantization give the same tokens.
        var a = Mm("generate", "--model", q8, "--prompt", "Hello", "--max-new-tokens", "6");
        var b = Mm("generate", "--model", dir, "--quantize", "q8", "--prompt", "Hello", "--max-new-tokens", "6");
        Assert.True(a.Code == 0 && b.Code == 0, a.Err + b.Err);
        Assert.Equal(a.Out, b.Out);
        // Bad values name the option.
        var bad = Mm("generate", "--model", dir, "--quantize", "q3", "--prompt", "Hello");
        Assert.Equal(2, bad.Code);
        Assert.Contains("--quantize", bad.Err);
        Assert.Equal(2, Mm("quantize", "--model", dir, "--to", "q8", "--out", dir).Code);
    }
}

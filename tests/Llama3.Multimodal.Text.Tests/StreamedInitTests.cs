using Llama3.Multimodal.Text;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text.Tests;

public class StreamedInitTests
{
    [Theory]
    [InlineData(ScalarType.Float32, false)]
    [InlineData(ScalarType.BFloat16, true)]
    public void SaveRandomWritesTheBytesOfAnInitialisedModelWithoutHoldingIt(ScalarType dtype, bool tied)
    {
        var cfg = TestModels.Small(tied: tied);
        string held = TestModels.TempDir(), streamed = TestModels.TempDir();
        using (var m = LlamaForCausalLM.Create(cfg, CPU, ScalarType.Float32).InitializeWeights(21))
            m.Save(held, CheckpointLayout.HuggingFace, dtype, maxShardBytes: 40_000);
        LlamaForCausalLM.SaveRandom(cfg, streamed, 21, dtype, maxShardBytes: 40_000);
        var files = Directory.GetFiles(held).Select(Path.GetFileName).OrderBy(f => f, StringComparer.Ordinal).ToList();
        Assert.True(files.Count > 3, "expected a sharded checkpoint");
        Assert.Equal(files, Directory.GetFiles(streamed).Select(Path.GetFileName).OrderBy(f => f, StringComparer.Ordinal).ToList());
        foreach (var f in files)
            Assert.Equal(File.ReadAllBytes(Path.Combine(held, f!)), File.ReadAllBytes(Path.Combine(streamed, f!)));
    }

    [Fact]
    public void StreamedValuesComeInParameterOrderOnly()
    {
        using var m = LlamaForCausalLM.Create(TestModels.Small(), TorchSharp.torch.device(TorchSharp.DeviceType.META));
        var s = new WeightInit.Stream(m, 1);
        var names = m.named_parameters().Select(p => p.name).ToList();
        using (var first = s.Next(names[0])) Assert.Equal(m.named_parameters().First().parameter.shape, first.shape);
        var e = Assert.Throws<InvalidOperationException>(() => s.Next(names[2]));
        Assert.Contains(names[1], e.Message);
    }
}

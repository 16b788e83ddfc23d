using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text.Tests;

[CollectionDefinition("mapped-loading", DisableParallelization = true)]
public sealed class MappedLoadingCollection { }

// Counts live mappings process-wide, so it runs alone.
[Collection("mapped-loading")]
public class MappedLoadingTests
{
    static Tensor Logits(LlamaForCausalLM m, Tensor ids)
    {
        using var _ = no_grad();
        return m.Forward(ids);
    }

    [Theory]
    [InlineData(ScalarType.Float32, false)]
    [InlineData(ScalarType.Float32, true)]
    [InlineData(ScalarType.BFloat16, false)]
    public void MappedLoadGivesTheSameLogitsAsTheModelItWasSavedFrom(ScalarType dtype, bool tied)
    {
        var cfg = TestModels.Small(tied: tied);
        using var m = TestModels.Model(cfg, 5);
        string dir = TestModels.TempDir();
        m.Save(dir, CheckpointLayout.HuggingFace, dtype);
        using var reference = LlamaForCausalLM.Create(cfg, CPU, dtype);
        using (var r = CheckpointReader.Open(dir)) StateLoader.Load(reference, r, ignoreUnexpected: _ => tied);
        int before = MappedTensors.LiveRegions;
        using var mapped = LlamaForCausalLM.FromPretrained(dir, CPU, dtype);
        Assert.True(MappedTensors.LiveRegions > before, "the weights were read, not mapped");
        var ids = TestModels.Ids(2, 7, cfg.VocabSize, 3);
        Assert.True(Logits(reference, ids).equal(Logits(mapped, ids)).all().item<bool>());
        foreach (var ((name, a), (_, b)) in reference.named_parameters().Zip(mapped.named_parameters()))
            Assert.True(a.equal(b).all().item<bool>(), name);
    }

    [Fact]
    public void WritingToAMappedWeightNeverChangesTheFile()
    {
        var cfg = TestModels.Small();
        using var m = TestModels.Model(cfg, 6);
        string dir = TestModels.TempDir();
        m.Save(dir);
        string file = Path.Combine(dir, "model.safetensors");
        byte[] before = File.ReadAllBytes(file);
        using (var mapped = LlamaForCausalLM.FromPretrained(dir))
        {
            using var _ = no_grad();
            foreach (var (_, p) in mapped.named_parameters()) p.fill_(3.0);
            var ids = TestModels.Ids(1, 4, cfg.VocabSize, 1);
            Assert.False(Logits(mapped, ids).isnan().any().item<bool>());
        }
        Assert.Equal(before, File.ReadAllBytes(file));
        using var again = LlamaForCausalLM.FromPretrained(dir);
        var x = TestModels.Ids(1, 5, cfg.VocabSize, 2);
        Assert.True(Logits(m, x).equal(Logits(again, x)).all().item<bool>());
    }

    [Fact]
    public void FusedProjectionsStayFusedWhenMappedAndAreReadWhenTheFileOrderDiffers()
    {
        // A file in another tensor order (sorted keys, as many published checkpoints are) cannot back the fused q/k/v
        // and gate/up storages; those are read into them instead, and the results are the same.
        var cfg = TestModels.Small(tied: true);
        using var m = TestModels.Model(cfg, 8);
        string ordered = TestModels.TempDir(), sorted = TestModels.TempDir();
        m.Save(ordered);
        m.Save(sorted);
        var tensors = m.named_parameters().OrderBy(p => p.name, StringComparer.Ordinal).Select(p => new KeyValuePair<string, Tensor>(p.name, p.parameter)).ToList();
        SafeTensorsWriter.Save(Path.Combine(sorted, "model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        using var a = LlamaForCausalLM.FromPretrained(ordered);
        using var b = LlamaForCausalLM.FromPretrained(sorted);
        var ids = TestModels.Ids(2, 6, cfg.VocabSize, 4);
        var reference = Logits(m, ids);
        Assert.True(reference.equal(Logits(a, ids)).all().item<bool>());
        Assert.True(reference.equal(Logits(b, ids)).all().item<bool>());
        // Training mode (separate projections) agrees with the fused inference path on the mapped model.
        var layer = (LlamaDecoderLayer)a.model.layers[0];
        using var x = randn(1, 3, cfg.HiddenSize);
        Tensor fused;
        using (no_grad()) fused = layer.mlp.forward(x);
        var separate = layer.mlp.forward(x).detach();
        Assert.True(fused.allclose(separate, 1e-6, 1e-6));
    }

    [Fact]
    public void MappingsAreReleasedWithTheModel()
    {
        var cfg = TestModels.Small();
        using var m = TestModels.Model(cfg, 9);
        string dir = TestModels.TempDir();
        m.Save(dir);
        int before = MappedTensors.LiveRegions;
        var mapped = LlamaForCausalLM.FromPretrained(dir);
        Assert.True(MappedTensors.LiveRegions > before);
        mapped.Dispose();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.True(MappedTensors.LiveRegions <= before);
        Directory.Delete(dir, true);
    }
}

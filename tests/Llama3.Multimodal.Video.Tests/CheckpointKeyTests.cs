using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Video.Tests;

public class CheckpointKeyTests
{
    // Module names are the checkpoint keys.
    static Dictionary<string, long[]> Keys(VideoLanguageModel m) =>
        m.named_parameters().ToDictionary(np => np.name, np => np.parameter.shape);

    [Fact]
    public void TinyVideoKeysEqualCheckedInManifest()
    {
        // Manifests/tiny-video.txt: the video adapter's checkpoint keys, `key [shape]` per line, generated on the meta
        // device (regenerate with L3MM_WRITE_MANIFEST=<folder> and review the diff).
        using var m = VideoLanguageModel.Create(VideoPresets.Get("tiny-video"), torch.device(DeviceType.META));
        string actual = string.Join("\n", Keys(m).Where(kv => kv.Key.StartsWith("video_model.", StringComparison.Ordinal))
            .Select(kv => $"{kv.Key} [{string.Join(", ", kv.Value)}]")) + "\n";
        if (Environment.GetEnvironmentVariable("L3MM_WRITE_MANIFEST") is string dir) File.WriteAllText(Path.Combine(dir, "tiny-video.txt"), actual);
        Assert.Equal(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Manifests", "tiny-video.txt")), actual);
    }

    [Theory]
    [InlineData("tiny-video", "tiny-vision")]
    [InlineData("llama3.2-11b-video", "llama3.2-11b-vision")]
    public void BaseKeysAreExactlyTheImageModels(string video, string image)
    {
        var meta = torch.device(DeviceType.META);
        using var m = VideoLanguageModel.Create(VideoPresets.Get(video), meta);
        using var b = VisionLanguageModel.Create(VisionPresets.Get(image), meta);
        var ours = Keys(m).Where(kv => !kv.Key.StartsWith("video_model.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key, kv => kv.Value);
        var theirs = b.named_parameters().ToDictionary(np => np.name, np => np.parameter.shape);
        Assert.Equal(theirs.Keys.Order(), ours.Keys.Order());
        foreach (var (k, shape) in theirs) Assert.Equal(shape, ours[k]);
    }

    [Fact]
    public void FullSizeVideoKeys()
    {
        using var m = VideoLanguageModel.Create(VideoPresets.Get("llama3.2-11b-video"), torch.device(DeviceType.META));
        var keys = Keys(m);
        var video = keys.Keys.Where(k => k.StartsWith("video_model.", StringComparison.Ordinal)).ToList();
        Assert.Equal(2 * 13 + 3 + 2 * 12 + 2, video.Count);   // 2 video layers × 13 tensors + latents, time, group + 2 perceiver layers × 12 + final norm
        Assert.Equal(new long[] { 6404, 4096 }, keys["video_model.aggregator.latents"]);
        Assert.Equal(new long[] { 32, 4096 }, keys["video_model.aggregator.time_embedding"]);
        Assert.Equal(new long[] { 4, 4096 }, keys["video_model.aggregator.group_embedding"]);
        Assert.Equal(new long[] { 512, 4096 }, keys["video_model.aggregator.layers.1.attn.k_proj.weight"]);
        Assert.Equal(new long[] { 16384, 4096 }, keys["video_model.aggregator.layers.1.ffn.fc1.weight"]);
        Assert.Equal(new long[] { 1024, 4096 }, keys["video_model.cross_attention_layers.1.cross_attn.k_proj.weight"]);
        Assert.Equal(new long[] { 1 }, keys["video_model.cross_attention_layers.1.cross_attn_mlp_gate"]);
        Assert.Equal(new long[] { 14336, 4096 }, keys["video_model.cross_attention_layers.0.mlp.gate_proj.weight"]);
    }
}

using Llama3.Multimodal.Text;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text.Tests;

/// <summary>Small random-weight models shared by the tests.</summary>
internal static class TestModels
{
    public static LlamaConfig Small(int vocab = 512, int kv = 2, bool tied = false, int layers = 2) => new()
    {
        HiddenSize = 64, NumLayers = layers, NumHeads = 4, NumKvHeads = kv, IntermediateSize = 160, VocabSize = vocab,
        TieWordEmbeddings = tied, RopeTheta = 500000, RopeScaling = new RopeScaling(8, 1, 4, 8192), MaxPositionEmbeddings = 512,
    };

    public static LlamaForCausalLM Model(LlamaConfig c, long seed = 1) =>
        LlamaForCausalLM.Create(c, CPU, ScalarType.Float32).InitializeWeights(seed, 0.1);

    public static Tensor Ids(int b, int t, int vocab, int seed)
    {
        var rng = new Random(seed);
        var a = new long[b * t];
        for (int i = 0; i < a.Length; i++) a[i] = rng.Next(vocab);
        return tensor(a, new long[] { b, t });
    }

    public static string TempDir()
    {
        string d = Path.Combine(Path.GetTempPath(), "l3mm-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }
}

using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision;

/// <summary>A stack of encoder blocks (HF <c>MllamaVisionEncoder</c>, key <c>layers.{j}</c>).</summary>
public sealed class VisionTransformer : nn.Module
{
#pragma warning disable IDE1006
    /// <summary>The blocks.</summary>
    public readonly ModuleList<VisionEncoderLayer> layers;
#pragma warning restore IDE1006

    /// <summary>Creates <paramref name="count"/> blocks.</summary>
    public VisionTransformer(VisionConfig c, int count, bool gated, Device? device, ScalarType dtype) : base("VisionTransformer")
    {
        layers = new ModuleList<VisionEncoderLayer>(Enumerable.Range(0, count).Select(_ => new VisionEncoderLayer(c, gated, device, dtype)).ToArray());
        RegisterComponents();
    }

    /// <summary>
    /// Runs the blocks on x [M, L, D]. When <paramref name="keep"/> is given, also returns the states entering the blocks
    /// with those indices (HF <c>hidden_states[i]</c>), in the order of <paramref name="keep"/>.
    /// </summary>
    public (Tensor Output, List<Tensor> Kept) Forward(Tensor x, Tensor mask, IReadOnlyList<int>? keep = null)
    {
        var kept = new Tensor?[keep?.Count ?? 0];
        var h = x;
        for (int i = 0; i < layers.Count; i++)
        {
            if (keep != null)
                for (int k = 0; k < keep.Count; k++) if (keep[k] == i) kept[k] = h;
            var next = layers[i].Forward(h, mask);
            if (!ReferenceEquals(h, x) && !kept.Any(k => ReferenceEquals(k, h))) h.Dispose();
            h = next;
        }
        return (h, kept.Select(t => t!).ToList());
    }
}

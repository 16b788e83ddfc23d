using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// The DPO reference update of Llama 3 §7.5: every k optimizer steps the frozen reference model moves towards the policy
/// as an exponential moving average, <c>reference ← ema · reference + (1 − ema) · policy</c>, weight by weight (each
/// product rounded in the weight dtype, then summed).
/// </summary>
public static class ReferenceEma
{
    /// <summary>True when <paramref name="step"/> (optimizer steps done) is an update step of <paramref name="loss"/>'s schedule.</summary>
    public static bool Due(LossSection loss, long step) => loss.ReferenceUpdateEvery > 0 && loss.ReferenceEma < 1 && step % loss.ReferenceUpdateEvery == 0;

    /// <summary>Updates every parameter of <paramref name="reference"/> from the parameter of <paramref name="policy"/> with the same name.</summary>
    public static void Update(nn.Module reference, nn.Module policy, double ema)
    {
        var src = policy.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using var noGrad = torch.no_grad();
        using var keep = ema.ToScalar();
        using var take = (1 - ema).ToScalar();
        foreach (var (name, r) in reference.named_parameters())
        {
            if (!src.TryGetValue(name, out var p)) throw new InvalidOperationException($"the policy has no '{name}' for the reference model.");
            using var moved = p.to(r.dtype, r.device).mul(take);
            r.mul_(keep).add_(moved, Scalars.One);
        }
    }

    /// <summary>Writes <paramref name="reference"/>'s weights to <see cref="VisionDpoRecipe.ReferenceFile"/> in <paramref name="directory"/>.</summary>
    internal static void Save(nn.Module reference, string directory) =>
        SafeTensorsWriter.Save(Path.Combine(directory, VisionDpoRecipe.ReferenceFile), reference.named_parameters().Select(p => new KeyValuePair<string, Tensor>(p.name, p.parameter)));

    /// <summary>Reads <paramref name="reference"/>'s weights back from <paramref name="directory"/> when it has a reference file.</summary>
    internal static void LoadIfPresent(nn.Module reference, string directory, string recipe)
    {
        string path = Path.Combine(directory, VisionDpoRecipe.ReferenceFile);
        if (!File.Exists(path)) return;
        using var file = SafeTensorsFile.Open(path);
        using var noGrad = torch.no_grad();
        foreach (var (name, p) in reference.named_parameters())
        {
            if (!file.Entries.ContainsKey(name)) throw new CheckpointFormatException($"{path}: no '{name}' (reference model of {recipe}).");
            using var t = file.Read(name);
            p.copy_(t);
        }
    }
}

using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>Uniform weight averaging of checkpoints (Llama 3: the annealed model and each post-training stage are averages).</summary>
public static class CheckpointAverager
{
    /// <summary>Files besides the weights copied from the first checkpoint into the average.</summary>
    public static IReadOnlyList<string> SidecarFiles { get; } = new[]
    {
        "config.json", "generation_config.json", MediaTokens.InfoFile, "tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    };

    /// <summary>
    /// Writes to <paramref name="outDir"/> the element-wise mean of the model weights of <paramref name="checkpoints"/>
    /// (each a folder with safetensors weights, all with the same keys and shapes), keeping each tensor's dtype, and copies
    /// the first checkpoint's <see cref="SidecarFiles"/> (model config, generation config with the prompt format, the
    /// multimodal recipes' <c>train_info.json</c>, tokenizer files), so that the average loads as its runs do. Frozen weights
    /// that all runs share come out bit-identical. Throws <see cref="CheckpointFormatException"/> naming the folder and key on a mismatch.
    /// </summary>
    public static void Average(IReadOnlyList<string> checkpoints, string outDir)
    {
        if (checkpoints.Count == 0) throw new ArgumentException("no checkpoints to average.");
        var readers = checkpoints.Select(OpenModel).ToList();
        try
        {
            var keys = readers[0].Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
            for (int i = 1; i < readers.Count; i++)
            {
                var other = readers[i].Keys.ToHashSet(StringComparer.Ordinal);
                var missing = keys.Where(k => !other.Contains(k)).Concat(other.Where(k => !keys.Contains(k))).ToList();
                if (missing.Count > 0) throw new CheckpointFormatException($"{checkpoints[i]}: keys differ from {checkpoints[0]} (e.g. '{missing[0]}').");
                foreach (var k in keys)
                    if (!readers[i].Info(k).Shape.SequenceEqual(readers[0].Info(k).Shape))
                        throw new CheckpointFormatException($"{checkpoints[i]}: '{k}' has shape {readers[i].Info(k).ShapeText}, {checkpoints[0]} has {readers[0].Info(k).ShapeText}.");
            }
            Directory.CreateDirectory(outDir);
            using var count = ((long)readers.Count).ToScalar();
            var writes = keys.Select(k =>
            {
                var info = readers[0].Info(k);
                return new TensorToWrite(k, info.Shape.ToArray(), info.DType, () =>
                {
                    using var scope = NewDisposeScope();
                    Tensor acc = torch.zeros(info.Shape.ToArray(), ScalarType.Float64);
                    foreach (var r in readers) { using var t = r.Read(k); acc.add_(t.to_type(ScalarType.Float64), Scalars.One); }
                    return acc.div_(count).to_type(info.DType).MoveToOuterDisposeScope();
                });
            }).ToList();
            SafeTensorsWriter.Write(Path.Combine(outDir, "model.safetensors"), writes);
            foreach (var name in SidecarFiles)
            {
                string src = Path.Combine(checkpoints[0], name);
                if (File.Exists(src)) AtomicFile.WriteAllBytes(Path.Combine(outDir, name), File.ReadAllBytes(src));
            }
        }
        finally { foreach (var r in readers) r.Dispose(); }
    }

    static CheckpointReader OpenModel(string dir)
    {
        if (!Directory.Exists(dir)) throw new CheckpointFormatException($"{dir}: checkpoint folder not found.");
        return CheckpointReader.Open(dir);
    }
}

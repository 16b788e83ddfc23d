using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>One micro-batch: named tensors (CPU) plus the counts the trainer needs.</summary>
public sealed class MicroBatch : IDisposable
{
    /// <summary>Named tensors, e.g. <c>input_ids</c> [B, T], <c>labels</c> [B, T], <c>document_ids</c> [B, T].</summary>
    public Dictionary<string, Tensor> Tensors { get; } = new(StringComparer.Ordinal);
    /// <summary>Tokens in the micro-batch (for throughput and the batch ramp).</summary>
    public long Tokens { get; init; }
    /// <summary>Samples (sequences, pairs, clips) in the micro-batch.</summary>
    public long Samples { get; init; }
    /// <summary>Elements the loss is averaged over (labelled tokens or pairs); the step's loss is Σ loss sums / Σ elements.</summary>
    public long LossElements { get; init; }
    /// <summary>A placeholder for a micro-batch that another data-parallel rank reads and trains (no tensors).</summary>
    public bool Remote { get; init; }
    /// <summary>Stream position after this micro-batch.</summary>
    public required DataCursor End { get; init; }
    /// <summary>The tensor named <paramref name="name"/>.</summary>
    public Tensor this[string name] => Tensors.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"micro-batch has no tensor '{name}'.");
    /// <summary>
    /// An <see cref="Vision.ImageBatch"/> view (aliases, dispose it) of the images of a micro-batch collated by the image
    /// and video recipes: <c>pixel_values</c>, <c>aspect_ratio_ids</c> and <c>aspect_ratio_mask</c>.
    /// </summary>
    public Vision.ImageBatch Images()
    {
        var mask = this["aspect_ratio_mask"];
        using var counts = mask.sum(-1).to(ScalarType.Int64).cpu();
        long rows = counts.shape[0], n = counts.shape[1];
        var data = counts.data<long>().ToArray();
        // A row with fewer images than the batch's most has padding slots (aspect ratio id 0): they are not images.
        using var idsCpu = this["aspect_ratio_ids"].to(ScalarType.Int64).cpu();
        var ids = idsCpu.data<long>().ToArray();
        var numTiles = Enumerable.Range(0, (int)rows).Select(r => (IReadOnlyList<int>)Enumerable.Range(0, (int)n).Where(i => ids[r * n + i] != 0)
            .Select(i => (int)data[r * n + i]).ToList()).ToList();
        return new Vision.ImageBatch { PixelValues = this["pixel_values"].alias(), AspectRatioIds = this["aspect_ratio_ids"].alias(), AspectRatioMask = mask.alias(), NumTiles = numTiles };
    }

    /// <summary>Disposes the tensors.</summary>
    public void Dispose() { foreach (var t in Tensors.Values) t.Dispose(); Tensors.Clear(); }
}

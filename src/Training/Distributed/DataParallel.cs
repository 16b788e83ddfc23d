using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training.Distributed;

/// <summary>
/// Data-parallel helpers: start every rank from rank 0's weights, and average gradients across ranks after backward
/// (in buckets of flattened gradients, before clipping), so each rank applies the same update.
/// </summary>
public static class DataParallel
{
    /// <summary>Copies rank 0's parameters to every rank.</summary>
    public static void BroadcastParameters(IEnumerable<Tensor> parameters, ICollectives c)
    {
        if (c.WorldSize == 1) return;
        using var noGrad = torch.no_grad();
        foreach (var p in parameters) c.Broadcast(p, 0);
    }

    /// <summary>
    /// Replaces each gradient by its mean over ranks. Gradients are packed into f32 buckets of about
    /// <paramref name="bucketBytes"/> so each collective moves a large contiguous buffer. A missing gradient counts as zero.
    /// </summary>
    public static void AverageGradients(IReadOnlyList<Tensor> parameters, ICollectives c, long bucketBytes = 25L << 20) =>
        Reduce(parameters, c, bucketBytes, average: true);

    /// <summary>
    /// Replaces each gradient by its sum over ranks (for losses already divided by the global element count), in
    /// f32 buckets of about <paramref name="bucketBytes"/>.
    /// </summary>
    public static void SumGradients(IReadOnlyList<Tensor> parameters, ICollectives c, long bucketBytes = 25L << 20) =>
        Reduce(parameters, c, bucketBytes, average: false);

    static void Reduce(IReadOnlyList<Tensor> parameters, ICollectives c, long bucketBytes, bool average)
    {
        if (c.WorldSize == 1) return;
        using var noGrad = torch.no_grad();
        long perBucket = Math.Max(1, bucketBytes / 4);
        using var world = ((long)c.WorldSize).ToScalar();
        int i = 0;
        while (i < parameters.Count)
        {
            var group = new List<Tensor>();
            long n = 0;
            while (i < parameters.Count && (group.Count == 0 || n + parameters[i].numel() <= perBucket))
            {
                group.Add(parameters[i]);
                n += parameters[i].numel();
                i++;
            }
            using var scope = NewDisposeScope();
            var flat = torch.cat(group.Select(p => (p.grad is { } g ? g : torch.zeros_like(p)).to_type(ScalarType.Float32).reshape(-1)).ToArray());
            c.AllReduceSum(flat);
            if (average) flat.div_(world);
            long off = 0;
            foreach (var p in group)
            {
                var part = flat.narrow(0, off, p.numel()).view(p.shape).to_type(p.dtype);
                off += p.numel();
                if (p.grad is { } g) g.copy_(part);
                else p.grad = part.clone().DetachFromDisposeScope();
            }
        }
    }

    /// <summary>The indices of <paramref name="count"/> items that rank <paramref name="rank"/> of <paramref name="world"/> reads: every world-th item.</summary>
    public static IEnumerable<long> Shard(long count, int rank, int world)
    {
        for (long k = rank; k < count; k += world) yield return k;
    }
}

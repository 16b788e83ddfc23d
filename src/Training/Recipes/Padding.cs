using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>Batch padding shared by the recipes: token rows and log-mel feature sequences.</summary>
internal static class Padding
{
    /// <summary>Right-pads rows to a common length (≤ <paramref name="maxLen"/>, truncating longer ones) into [B, T] int64.</summary>
    public static Tensor Rows(IReadOnlyList<long[]> rows, long pad, int maxLen, out int len)
    {
        len = Math.Min(maxLen, rows.Max(r => r.Length));
        var a = new long[rows.Count * len];
        for (int r = 0; r < rows.Count; r++)
            for (int t = 0; t < len; t++) a[r * len + t] = t < rows[r].Length ? rows[r][t] : pad;
        return torch.tensor(a, new long[] { rows.Count, len });
    }

    /// <summary>Pads [T, 80] features into [B, T_max, 80] with their frame counts (disposing the items).</summary>
    public static MicroBatch Features(List<Tensor> items, DataCursor end, long elements)
    {
        long tMax = items.Max(f => f.shape[0]);
        var b = new MicroBatch { Tokens = items.Sum(f => f.shape[0]), Samples = items.Count, LossElements = elements, End = end };
        using (var scope = NewDisposeScope())
        {
            b.Tensors["features"] = torch.stack(items.Select(f => nn.functional.pad(f, new long[] { 0, 0, 0, tMax - f.shape[0] })).ToArray()).MoveToOuterDisposeScope();
        }
        b.Tensors["lengths"] = torch.tensor(items.Select(f => f.shape[0]).ToArray());
        foreach (var f in items) f.Dispose();
        return b;
    }
}

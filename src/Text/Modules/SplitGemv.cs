using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>
/// Single-token decode on CPU is a matrix-vector product bounded by memory bandwidth, and one libtorch GEMV call on a
/// large weight reaches only about half of what the cores can stream. Splitting the weight's rows into one block per
/// core and running the blocks concurrently reads them at nearly the full bandwidth (measured here: 128 MB gate/up
/// projection 17.6 → 29.6 GB/s on 2 cores; BENCHMARKS.md). Used only where it pays: one row of input, CPU, no
/// gradients, weights of at least <see cref="MinBytes"/>.
/// </summary>
public static class SplitGemv
{
    /// <summary>Smallest weight (bytes) worth splitting; smaller ones lose more to thread hand-off than they gain.</summary>
    public static long MinBytes { get; set; } = 48L << 20;

    /// <summary>Number of blocks (default: the processor count); 1 disables splitting.</summary>
    public static int Blocks { get; set; } = Environment.ProcessorCount;

    /// <summary><c>x Wᵀ</c> for x [..., in] and W [out, in], split over cores when it pays.</summary>
    public static Tensor Linear(Tensor x, Tensor w)
    {
        long rows = x.numel() / x.shape[^1];
        if (rows != 1 || Blocks < 2 || w.device_type != DeviceType.CPU || torch.is_grad_enabled()
            || w.numel() * w.element_size() < MinBytes || !w.is_contiguous())
            return nn.functional.linear(x, w);
        long n = w.shape[0];
        var shape = x.shape.ToArray();
        shape[^1] = n;
        var y = torch.empty(shape, dtype: x.dtype, device: x.device);
        using var x2 = x.reshape(1, x.shape[^1]);
        using var yflat = y.view(n);
        int parts = Blocks;
        void Part(int i)
        {
            long start = n * i / parts, len = n * (i + 1) / parts - start;
            using var wi = w.narrow(0, start, len);
            using var yi = nn.functional.linear(x2, wi);
            using var dst = yflat.narrow(0, start, len);
            using var src = yi.view(len);
            dst.copy_(src);
        }
        var others = Enumerable.Range(1, parts - 1).Select(i => Task.Run(() =>
        {
            using var noGrad = torch.no_grad();
            Part(i);
        })).ToArray();
        Part(0);
        Task.WaitAll(others);
        return y;
    }
}

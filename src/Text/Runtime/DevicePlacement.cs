using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>
/// Chooses where the blocks of a model split over several devices go. A placement is a list of devices, one entry per
/// block (the form <see cref="LlamaForCausalLM.Create"/> accepts as <c>devices</c> when its length equals the block
/// count): contiguous ranges, sized in proportion to each device's free memory.
/// </summary>
public static class DevicePlacement
{
    /// <summary>
    /// Contiguous ranges of <paramref name="blocks"/> blocks over <paramref name="devices"/>, each range proportional to
    /// <paramref name="weights"/> (e.g. free bytes; largest-remainder rounding, in device order). Returns one device per block.
    /// </summary>
    public static IReadOnlyList<Device> Proportional(IReadOnlyList<Device> devices, IReadOnlyList<long> weights, int blocks)
    {
        if (devices.Count == 0) throw new ArgumentException("no devices to place blocks on.");
        if (weights.Count != devices.Count) throw new ArgumentException($"{devices.Count} devices but {weights.Count} weights.");
        if (blocks < 1) throw new ArgumentException($"block count must be positive (got {blocks}).");
        if (weights.Any(w => w < 0)) throw new ArgumentException("weights must not be negative.");
        double total = weights.Sum(w => (double)w);
        if (total <= 0) throw new ArgumentException("no device has free memory (all weights are 0).");
        var exact = weights.Select(w => w / total * blocks).ToArray();
        var counts = exact.Select(x => (int)Math.Floor(x)).ToArray();
        foreach (int i in Enumerable.Range(0, devices.Count).OrderByDescending(i => exact[i] - counts[i]).ThenBy(i => i).Take(blocks - counts.Sum()))
            counts[i]++;
        var list = new List<Device>(blocks);
        for (int d = 0; d < devices.Count; d++) list.AddRange(Enumerable.Repeat(devices[d], counts[d]));
        return list;
    }

    /// <summary>
    /// Every visible CUDA device, with <paramref name="blocks"/> blocks split by free memory as NVML reports it; equal
    /// ranges when NVML cannot be read. Null when fewer than two CUDA devices are available (nothing to split).
    /// </summary>
    /// <param name="blocks">Blocks of the decoder stack.</param>
    /// <param name="report">Receives a line describing the choice.</param>
    public static IReadOnlyList<Device>? Auto(int blocks, Action<string>? report = null)
    {
        int n = cuda.is_available() ? cuda.device_count() : 0;
        if (n < 2)
        {
            report?.Invoke($"--devices auto: {n} CUDA device(s) visible; no split.");
            return null;
        }
        var devices = Enumerable.Range(0, n).Select(i => new Device(DeviceType.CUDA, i)).ToList();
        var free = devices.Select(d => CudaFreeBytes(d.index)).ToList();
        if (free.Any(f => f is null))
        {
            report?.Invoke("--devices auto: free memory unknown (NVML not readable); equal ranges.");
            return Proportional(devices, devices.Select(_ => 1L).ToList(), blocks);
        }
        var placement = Proportional(devices, free.Select(f => f!.Value).ToList(), blocks);
        report?.Invoke("--devices auto: " + string.Join(", ", devices.Select((d, i) =>
            $"cuda:{i} {free[i]!.Value / (1L << 30)} GiB free → {placement.Count(p => p.index == i)} blocks")));
        return placement;
    }

    /// <summary>
    /// Free bytes of CUDA device <paramref name="cudaIndex"/> from NVML (<c>libnvidia-ml</c>), or null when NVML is
    /// missing or fails. CUDA ordinals are mapped through a numeric <c>CUDA_VISIBLE_DEVICES</c>; NVML counts in PCI bus
    /// order, so set <c>CUDA_DEVICE_ORDER=PCI_BUS_ID</c> for the two orders to agree on mixed machines.
    /// </summary>
    public static long? CudaFreeBytes(int cudaIndex)
    {
        int nvmlIndex = cudaIndex;
        string? visible = Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES");
        if (!string.IsNullOrWhiteSpace(visible))
        {
            var ids = visible.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            if (cudaIndex >= ids.Length || !int.TryParse(ids[cudaIndex], out nvmlIndex)) return null;
        }
        try
        {
            if (Nvml.Init() != 0) return null;
            try
            {
                if (Nvml.GetHandleByIndex((uint)nvmlIndex, out var handle) != 0) return null;
                return Nvml.GetMemoryInfo(handle, out var mem) == 0 ? (long)mem.Free : null;
            }
            finally { Nvml.Shutdown(); }
        }
        catch (DllNotFoundException) { return null; }
        catch (EntryPointNotFoundException) { return null; }
    }

    static class Nvml
    {
        const string Lib = "libnvidia-ml.so.1";
        [StructLayout(LayoutKind.Sequential)]
        public struct Memory { public ulong Total, Free, Used; }
        [DllImport(Lib, EntryPoint = "nvmlInit_v2")] public static extern int Init();
        [DllImport(Lib, EntryPoint = "nvmlShutdown")] public static extern int Shutdown();
        [DllImport(Lib, EntryPoint = "nvmlDeviceGetHandleByIndex_v2")] public static extern int GetHandleByIndex(uint index, out IntPtr device);
        [DllImport(Lib, EntryPoint = "nvmlDeviceGetMemoryInfo")] public static extern int GetMemoryInfo(IntPtr device, out Memory memory);
    }
}

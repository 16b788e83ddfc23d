using System.Collections.Concurrent;
using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>
/// CPU tensors whose memory is a private (copy-on-write) mapping of a file region: the bytes come straight from the
/// page cache, nothing is copied or zero-filled, and a write to the tensor changes only this process's copy of the
/// touched page, never the file. The mapping lives exactly as long as the tensor's storage (libtorch calls back when
/// the last view of it is freed).
/// </summary>
internal static unsafe partial class MappedTensors
{
    static readonly ConcurrentDictionary<IntPtr, MemoryMappedViewAccessor> Views = new();

    /// <summary>Mapped regions alive now (for tests).</summary>
    public static int LiveRegions => Views.Count;

    [LibraryImport("LibTorchSharp")]
    private static partial IntPtr THSTensor_new(IntPtr data, delegate* unmanaged<IntPtr, void> deleter, long* sizes, int szlength,
        sbyte scalarType, sbyte dtype, int deviceType, int deviceIndex, [MarshalAs(UnmanagedType.U1)] bool requiresGrad);

    [UnmanagedCallersOnly]
    static void Release(IntPtr data)
    {
        try
        {
            if (Views.TryRemove(data, out var view)) view.Dispose();
        }
        catch (Exception)
        {
            // Never let an exception cross into native code; the mapping is then released with the process.
        }
    }

    /// <summary>
    /// A 1-D tensor of <paramref name="dtype"/> over <paramref name="bytes"/> bytes of <paramref name="file"/> from
    /// <paramref name="offset"/>, or null when the region cannot be mapped (the caller then reads it instead).
    /// </summary>
    public static Tensor? Map(MemoryMappedFile file, long offset, long bytes, ScalarType dtype)
    {
        long elem = SafeTensorDType.Size(dtype);
        if (bytes <= 0 || bytes % elem != 0) return null;
        MemoryMappedViewAccessor view;
        try { view = file.CreateViewAccessor(offset, bytes, MemoryMappedFileAccess.CopyOnWrite); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException) { return null; }
        IntPtr data = view.SafeMemoryMappedViewHandle.DangerousGetHandle() + checked((nint)view.PointerOffset);
        if (!Views.TryAdd(data, view))
        {
            view.Dispose();
            return null;
        }
        _ = torch.CPU; // libtorch loaded before the first native call
        long n = bytes / elem;
        IntPtr handle = THSTensor_new(data, &Release, &n, 1, (sbyte)dtype, (sbyte)dtype, 0, 0, false);
        if (handle == IntPtr.Zero)
        {
            if (Views.TryRemove(data, out var v)) v.Dispose();
            return null;
        }
        return Tensor.UnsafeCreateTensor(handle);
    }

    /// <summary>True when <paramref name="t"/>'s first element lies in a live mapped region (for tests).</summary>
    public static bool IsMapped(Tensor t)
    {
        long a = Address(t);
        foreach (var (start, view) in Views)
            if (a >= (long)start && a < (long)start + view.Capacity) return true;
        return false;
    }

    /// <summary>Address of a CPU tensor's first element.</summary>
    public static IntPtr Address(Tensor t) => (IntPtr)TensorPointers.Data(t);
}

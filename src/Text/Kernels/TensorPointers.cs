using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>Raw addresses of libtorch CPU tensor memory, so kernels read and write it in place without copies.</summary>
internal static partial class TensorPointers
{
    [LibraryImport("LibTorchSharp")]
    private static partial IntPtr THSTensor_data(IntPtr handle);

    /// <summary>Address of the tensor's first element (its storage offset included); CPU tensors only.</summary>
    public static unsafe void* Data(Tensor t)
    {
        if (t.device_type != DeviceType.CPU) throw new ArgumentException($"kernel tensors must be on the CPU; got {t.device}.");
        var p = THSTensor_data(t.Handle);
        if (p == IntPtr.Zero && t.numel() > 0) throw new InvalidOperationException("libtorch returned no data pointer for a tensor.");
        return (void*)p;
    }
}

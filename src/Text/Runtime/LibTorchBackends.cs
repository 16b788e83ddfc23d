using System.Runtime.InteropServices;
using TorchSharp;

namespace Llama3.Multimodal.Text;

/// <summary>
/// libtorch's process-wide backend switches that TorchSharp does not expose, reached through libtorch's exported C++
/// entry points (<c>at::globalContext()</c> and its <c>Context</c> members).
/// </summary>
public static class LibTorchBackends
{
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    delegate IntPtr GlobalContextFn();
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    delegate void SetFlagFn(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool value);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    [return: MarshalAs(UnmanagedType.U1)]
    delegate bool GetFlagFn(IntPtr context);

    // Itanium (Linux, macOS) and MSVC (Windows) names of at::globalContext(), Context::setUserEnabledNNPACK(bool) and
    // Context::userEnabledNNPACK() const.
    static readonly string[] GlobalContextNames = { "_ZN2at13globalContextEv", "?globalContext@at@@YAAEAVContext@1@XZ" };
    static readonly string[] SetNnpackNames = { "_ZN2at7Context20setUserEnabledNNPACKEb", "?setUserEnabledNNPACK@Context@at@@QEAAX_N@Z" };
    static readonly string[] GetNnpackNames = { "_ZNK2at7Context17userEnabledNNPACKEv", "?userEnabledNNPACK@Context@at@@QEBA_NXZ" };
    static readonly string[] LibraryNames = { "libtorch_cpu.so", "libtorch_cpu.dylib", "torch_cpu.dll", "libtorch_cpu", "torch_cpu" };

    static readonly Lazy<bool> Disabled = new(() => SetNnpack(false));

    /// <summary>
    /// Turns libtorch's NNPACK convolution backend off for the process, once (PyTorch's
    /// <c>torch.backends.nnpack.set_flags(False)</c>); the model layers that convolve call it when built. libtorch only
    /// considers NNPACK for CPU convolutions that MKL-DNN does not take, and uses it only for batches of 16 or more, which
    /// MKL-DNN always takes, so results do not change; but considering it initialises NNPACK, which logs "Could not
    /// initialize NNPACK! Reason: Unsupported hardware." on CPUs it does not support. Returns false when the switch
    /// cannot be reached (a libtorch without these entry points).
    /// </summary>
    public static bool DisableNnpack() => Disabled.Value;

    /// <summary>Whether libtorch may use NNPACK (its user flag; true by default); null when the flag cannot be read.</summary>
    public static bool? NnpackEnabled
    {
        get
        {
            var ctx = Context();
            var get = Export<GetFlagFn>(GetNnpackNames);
            return ctx == IntPtr.Zero || get is null ? null : get(ctx);
        }
    }

    static bool SetNnpack(bool enabled)
    {
        var ctx = Context();
        var set = Export<SetFlagFn>(SetNnpackNames);
        if (ctx == IntPtr.Zero || set is null) return false;
        set(ctx, enabled);
        return true;
    }

    static IntPtr Context() => Export<GlobalContextFn>(GlobalContextNames) is { } f ? f() : IntPtr.Zero;

    static IntPtr _library;

    static T? Export<T>(string[] names) where T : Delegate
    {
        if (_library == IntPtr.Zero)
        {
            torch.InitializeDeviceType(DeviceType.CPU);   // loads libtorch through TorchSharp first
            var asm = typeof(torch).Assembly;
            foreach (var name in LibraryNames)
                if (NativeLibrary.TryLoad(name, asm, DllImportSearchPath.AssemblyDirectory | DllImportSearchPath.SafeDirectories, out _library)
                    || NativeLibrary.TryLoad(name, out _library))
                    break;
            if (_library == IntPtr.Zero) return null;
        }
        foreach (var n in names)
            if (NativeLibrary.TryGetExport(_library, n, out var p)) return Marshal.GetDelegateForFunctionPointer<T>(p);
        return null;
    }
}

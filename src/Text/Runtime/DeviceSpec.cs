using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>Parses device names and reports which TorchSharp native backend is loaded.</summary>
public static class DeviceSpec
{
    /// <summary>Parses "cpu", "cuda", "cuda:N" or "meta"; fails clearly when CUDA is asked for but not available.</summary>
    public static Device Parse(string name)
    {
        string n = name.Trim().ToLowerInvariant();
        if (n == "cpu") return CPU;
        if (n == "meta") return torch.device(DeviceType.META);
        if (n == "cuda" || n.StartsWith("cuda:", StringComparison.Ordinal))
        {
            if (!cuda.is_available())
                throw new ArgumentException($"device '{name}' asked for, but no CUDA backend is loaded ({Backend()}). Reference TorchSharp-cuda-linux instead of TorchSharp-cpu in your application.");
            return torch.device(n);
        }
        throw new ArgumentException($"unknown device '{name}' (use cpu, cuda, cuda:N or meta).");
    }

    /// <summary>Default dtype for a device: f32 on CPU (no bf16 hardware assumed), bf16 on CUDA.</summary>
    public static ScalarType DefaultDType(Device device) => device.type == DeviceType.CUDA ? ScalarType.BFloat16 : ScalarType.Float32;

    /// <summary>A one-line description of the loaded native backend, e.g. "libtorch CPU (CUDA not available), 2 threads".</summary>
    public static string Backend()
    {
        try
        {
            bool cudaOk = cuda.is_available();
            return $"libtorch {(cudaOk ? $"CUDA ({cuda.device_count()} device(s))" : "CPU (CUDA not available)")}, {torch.get_num_threads()} threads";
        }
        catch (Exception e) when (e is TypeInitializationException or DllNotFoundException or NotSupportedException)
        {
            throw new InvalidOperationException(
                "The TorchSharp native backend could not be loaded. Reference exactly one of TorchSharp-cpu or TorchSharp-cuda-linux " +
                $"in your application (not only TorchSharp). Inner error: {e.GetBaseException().Message}", e);
        }
    }
}

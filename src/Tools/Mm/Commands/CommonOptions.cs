using System.CommandLine;
using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Tools.Mm.Commands;

/// <summary>Options shared by several commands and the code that turns them into objects.</summary>
public static class CommonOptions
{
    /// <summary>--device.</summary>
    public static Option<string> Device() => new("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
    /// <summary>--dtype.</summary>
    public static Option<string?> DType() => new("--dtype") { Description = "f32, bf16 or f16 (default: f32 on CPU, bf16 on CUDA)" };
    /// <summary>--devices: split the layers over several devices.</summary>
    public static Option<string?> Devices() => new("--devices") { Description = "split the layers over several devices: a list such as cuda:0,cuda:1 (contiguous equal ranges), or auto (every CUDA device, ranges sized by free memory)" };

    /// <summary>--quantize: q8 weights for the language model, applied while loading.</summary>
    public static Option<string?> Quantize() => new("--quantize")
    {
        Description = "store the language model's linear layers (and its embedding and output head) as q8 while loading: int8 with one f16 scale per 32 weights (docs/QUANTIZATION.md)",
    };

    /// <summary>--keep-embeddings: with --quantize, leave the embedding and output head in --dtype.</summary>
    public static Option<bool> KeepEmbeddings() => new("--keep-embeddings") { Description = "with --quantize: keep the token embedding and output head in --dtype" };

    /// <summary>Parses a --quantize value (null or none: no quantization).</summary>
    public static WeightQuantization ParseQuantize(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "none" => WeightQuantization.None,
        "q8" or "q8_0" => WeightQuantization.Q8,
        _ => throw new CliException($"unknown --quantize '{value}' (use q8)."),
    };

    /// <summary>The load options of a generating command.</summary>
    public static LoadOptions Load(Device device, ScalarType dtype, string? quantize, bool keepEmbeddings, IReadOnlyList<Device>? devices = null) =>
        new() { Device = device, DType = dtype, Quantize = ParseQuantize(quantize), QuantizeEmbeddings = !keepEmbeddings, Devices = devices };

    /// <summary>Parses a comma-separated device list or <c>auto</c> (for a model of <paramref name="blocks"/> blocks), or null.</summary>
    public static IReadOnlyList<Device>? ParseDevices(string? list, Func<int>? blocks = null, TextWriter? log = null)
    {
        if (string.IsNullOrWhiteSpace(list)) return null;
        if (list.Trim() == "auto")
        {
            if (blocks is null) throw new CliException("--devices auto is not available for this command.");
            return DevicePlacement.Auto(blocks(), m => log?.WriteLine(m));
        }
        try { return list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(DeviceSpec.Parse).ToList(); }
        catch (ArgumentException e) { throw new CliException(e.Message); }
    }

    /// <summary>Decoder layer count of a text model folder (HF <c>config.json</c> or Meta <c>params.json</c>).</summary>
    public static int LayersOf(string dir) =>
        File.Exists(Path.Combine(dir, "config.json")) ? LlamaConfigJson.ReadHuggingFace(Path.Combine(dir, "config.json")).NumLayers
        : LlamaConfigJson.ReadMeta(Path.Combine(dir, "params.json")).NumLayers;

    /// <summary>--model.</summary>
    public static Option<string> Model() => new("--model") { Description = "model folder (HF config.json or Meta params.json + safetensors)", Required = true };

    /// <summary>Parses device and dtype, failing with a clear message.</summary>
    public static (Device, ScalarType) DeviceAndDType(string device, string? dtype)
    {
        try
        {
            var d = DeviceSpec.Parse(device);
            return (d, dtype is null ? DeviceSpec.DefaultDType(d) : SafeTensorDType.ParseUser(dtype));
        }
        catch (ArgumentException e) { throw new CliException(e.Message); }
    }

    /// <summary>Runs <paramref name="body"/>, turning library errors about user input into one-line messages.</summary>
    public static int Guard(CliIO io, Func<int> body)
    {
        try { return body(); }
        catch (Exception e) when (e is ConfigException or CheckpointFormatException or TokenizerFormatException or ArgumentException or CliException or FileNotFoundException or DirectoryNotFoundException or InvalidOperationException || IsMediaError(e))
        {
            io.Err.WriteLine($"error: {e.Message}");
            return 2;
        }
    }

    static bool IsMediaError(Exception e) => e.GetType().Name.EndsWith("DecodeException", StringComparison.Ordinal);

    /// <summary>Peak resident memory of this process in bytes (Linux VmHWM), or 0 when unknown.</summary>
    public static long PeakRssBytes()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(line.Split(new[] { ' ', '\t' }, StringSplitOptions.RemoveEmptyEntries)[1]) * 1024; // "VmHWM:\t11874536 kB": no space after the tab from 10 GB up
        }
        catch (IOException) { }
        return 0;
    }
}

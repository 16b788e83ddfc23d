using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>Mapping between safetensors dtype names and TorchSharp scalar types.</summary>
public static class SafeTensorDType
{
    /// <summary>The scalar type for a safetensors dtype name, or null when the name is unknown.</summary>
    public static ScalarType? Parse(string name) => name switch
    {
        "F32" => ScalarType.Float32,
        "F16" => ScalarType.Float16,
        "BF16" => ScalarType.BFloat16,
        "F64" => ScalarType.Float64,
        "I64" => ScalarType.Int64,
        "I32" => ScalarType.Int32,
        "I16" => ScalarType.Int16,
        "I8" => ScalarType.Int8,
        "U8" => ScalarType.Byte,
        "BOOL" => ScalarType.Bool,
        _ => null,
    };

    /// <summary>The safetensors name of a scalar type.</summary>
    public static string Name(ScalarType t) => t switch
    {
        ScalarType.Float32 => "F32",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Float64 => "F64",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        ScalarType.Int16 => "I16",
        ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8",
        ScalarType.Bool => "BOOL",
        _ => throw new ArgumentException($"dtype {t} cannot be stored in safetensors."),
    };

    /// <summary>Bytes per element.</summary>
    public static int Size(ScalarType t) => t switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        _ => 1,
    };

    /// <summary>Parses a user-facing dtype name: f32/float32, bf16/bfloat16, f16/float16.</summary>
    public static ScalarType ParseUser(string name) => name.ToLowerInvariant() switch
    {
        "f32" or "float32" or "float" or "fp32" => ScalarType.Float32,
        "bf16" or "bfloat16" => ScalarType.BFloat16,
        "f16" or "float16" or "half" or "fp16" => ScalarType.Float16,
        _ => throw new ArgumentException($"unknown dtype '{name}' (use f32, bf16 or f16)."),
    };
}

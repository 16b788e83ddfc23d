using System.Runtime.CompilerServices;

namespace Llama3.Multimodal.Text;

/// <summary>Bit-level conversions between f32 and the 16-bit float formats (bf16, IEEE f16), as libtorch rounds them.</summary>
internal static class HalfBits
{
    /// <summary>2^112: rescales an f16 exponent/mantissa pair shifted into f32 position (handles subnormals exactly).</summary>
    public const float F16Magic = 5.192296858534828e33f;

    /// <summary>bf16 bits → f32 (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Bf16ToF32(ushort h) => BitConverter.UInt32BitsToSingle((uint)h << 16);

    /// <summary>f32 → bf16 bits, round to nearest even (NaN stays NaN), as libtorch converts.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort F32ToBf16(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if (float.IsNaN(f)) return (ushort)((u >> 16) | 0x40);
        return (ushort)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }

    /// <summary>IEEE f16 bits → f32 (exact, including subnormals, infinities and NaN).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float F16ToF32(ushort h)
    {
        uint em = (uint)(h & 0x7fff);
        float v = BitConverter.UInt32BitsToSingle(em << 13) * F16Magic;
        uint bits = BitConverter.SingleToUInt32Bits(v);
        if (em >= 0x7c00) bits |= 0x7f800000u;
        return BitConverter.UInt32BitsToSingle(bits | ((uint)(h & 0x8000) << 16));
    }

    /// <summary>f32 → IEEE f16 bits, round to nearest even.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort F32ToF16(float f) => BitConverter.HalfToUInt16Bits((Half)f);
}

namespace Llama3.Multimodal.Training;

/// <summary>CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) and TFRecord's masked form.</summary>
public static class Crc32C
{
    static readonly uint[] Table = Build();

    static uint[] Build()
    {
        var t = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0x82F63B78u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }

    /// <summary>CRC-32C of <paramref name="data"/> (check value of "123456789" is 0xE3069283).</summary>
    public static uint Compute(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (byte b in data) c = Table[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }

    /// <summary>TFRecord's masked CRC: <c>((crc &gt;&gt; 15) | (crc &lt;&lt; 17)) + 0xa282ead8</c>.</summary>
    public static uint Masked(ReadOnlySpan<byte> data)
    {
        uint c = Compute(data);
        return unchecked(((c >> 15) | (c << 17)) + 0xa282ead8u);
    }
}

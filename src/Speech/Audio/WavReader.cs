using System.Buffers.Binary;

namespace Llama3.Multimodal.Speech;

/// <summary>
/// A small strict RIFF/WAVE reader: PCM integer 8 (unsigned), 16, 24 and 32 bits, IEEE float 32 and 64 bits, plain
/// or <c>WAVE_FORMAT_EXTENSIBLE</c>, any channel count and sample rate. Every chunk is checked against the file's
/// bounds; anything truncated or inconsistent is a <see cref="MediaDecodeException"/> naming the file.
/// </summary>
public static class WavReader
{
    const ushort FormatPcm = 1, FormatFloat = 3, FormatExtensible = 0xFFFE;

    /// <summary>True when <paramref name="header"/> starts like a RIFF/WAVE file.</summary>
    public static bool LooksLikeWav(ReadOnlySpan<byte> header) =>
        header.Length >= 12 && header[..4].SequenceEqual("RIFF"u8) && header.Slice(8, 4).SequenceEqual("WAVE"u8);

    /// <summary>Reads a WAV file.</summary>
    public static AudioClip Read(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new MediaDecodeException($"{path}: cannot read the file ({e.Message}).", e);
        }
        return Parse(bytes, path);
    }

    /// <summary>Parses WAV bytes; <paramref name="source"/> names them in errors.</summary>
    public static AudioClip Parse(ReadOnlySpan<byte> data, string source)
    {
        if (data.Length == 0) throw new MediaDecodeException($"{source}: the file is empty.");
        if (data.Length < 12) throw new MediaDecodeException($"{source}: truncated RIFF header ({data.Length} bytes, need 12).");
        if (!LooksLikeWav(data)) throw new MediaDecodeException($"{source}: not a RIFF/WAVE file (no 'RIFF….WAVE' header).");
        long riffEnd = 8L + BinaryPrimitives.ReadUInt32LittleEndian(data[4..]);
        if (riffEnd < 12) throw new MediaDecodeException($"{source}: RIFF size {riffEnd - 8} is smaller than the WAVE header.");
        if (riffEnd > data.Length)
            throw new MediaDecodeException($"{source}: truncated: the RIFF header declares {riffEnd} bytes but the file has {data.Length}.");

        Format? fmt = null;
        long pos = 12;
        while (pos + 8 <= riffEnd)
        {
            var id = data.Slice((int)pos, 4);
            long size = BinaryPrimitives.ReadUInt32LittleEndian(data[(int)(pos + 4)..]);
            long body = pos + 8;
            string name = ChunkName(id);
            if (body + size > riffEnd)
                throw new MediaDecodeException($"{source}: truncated: chunk '{name}' at byte {pos} declares {size} bytes but only {riffEnd - body} remain.");
            if (id.SequenceEqual("fmt "u8))
            {
                if (fmt is not null) throw new MediaDecodeException($"{source}: more than one 'fmt ' chunk.");
                fmt = ParseFormat(data.Slice((int)body, (int)size), source);
            }
            else if (id.SequenceEqual("data"u8))
            {
                if (fmt is null) throw new MediaDecodeException($"{source}: 'data' chunk before the 'fmt ' chunk.");
                return Decode(data.Slice((int)body, (int)size), fmt, source);
            }
            pos = body + size + (size & 1); // chunks are padded to even sizes
        }
        if (pos != riffEnd && pos < riffEnd)
            throw new MediaDecodeException($"{source}: truncated chunk header at byte {pos}.");
        throw new MediaDecodeException(fmt is null ? $"{source}: no 'fmt ' chunk." : $"{source}: no 'data' chunk.");
    }

    sealed record Format(ushort Kind, int Channels, int SampleRate, int BlockAlign, int Bits);

    static string ChunkName(ReadOnlySpan<byte> id)
    {
        var c = new char[4];
        for (int i = 0; i < 4; i++) c[i] = id[i] is >= 32 and < 127 ? (char)id[i] : '?';
        return new string(c);
    }

    static Format ParseFormat(ReadOnlySpan<byte> f, string source)
    {
        if (f.Length < 16) throw new MediaDecodeException($"{source}: 'fmt ' chunk has {f.Length} bytes, need at least 16.");
        ushort kind = BinaryPrimitives.ReadUInt16LittleEndian(f);
        int channels = BinaryPrimitives.ReadUInt16LittleEndian(f[2..]);
        long rate = BinaryPrimitives.ReadUInt32LittleEndian(f[4..]);
        int blockAlign = BinaryPrimitives.ReadUInt16LittleEndian(f[12..]);
        int bits = BinaryPrimitives.ReadUInt16LittleEndian(f[14..]);
        if (kind == FormatExtensible)
        {
            if (f.Length < 40) throw new MediaDecodeException($"{source}: WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk has {f.Length} bytes, need 40.");
            int cb = BinaryPrimitives.ReadUInt16LittleEndian(f[16..]);
            if (cb < 22) throw new MediaDecodeException($"{source}: WAVE_FORMAT_EXTENSIBLE extension size {cb}, need 22.");
            int validBits = BinaryPrimitives.ReadUInt16LittleEndian(f[18..]);
            if (validBits > bits) throw new MediaDecodeException($"{source}: valid bits {validBits} exceed the container's {bits} bits.");
            kind = BinaryPrimitives.ReadUInt16LittleEndian(f[24..]); // first two bytes of the sub-format GUID
            // The rest of the GUID is the fixed KSDATAFORMAT suffix 00000000-0010-8000-00AA00389B71.
            ReadOnlySpan<byte> suffix = new byte[] { 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71 };
            if (!f.Slice(26, 14).SequenceEqual(suffix))
                throw new MediaDecodeException($"{source}: WAVE_FORMAT_EXTENSIBLE with an unknown sub-format GUID.");
        }
        if (kind != FormatPcm && kind != FormatFloat)
            throw new MediaDecodeException($"{source}: unsupported WAV encoding 0x{kind:X4} (supported: PCM integer, IEEE float; other formats decode through ffmpeg).");
        if (channels < 1) throw new MediaDecodeException($"{source}: channel count {channels}, need at least 1.");
        if (rate < 1 || rate > 1_536_000) throw new MediaDecodeException($"{source}: sample rate {rate} Hz is out of range (1 … 1536000).");
        bool okBits = kind == FormatPcm ? bits is 8 or 16 or 24 or 32 : bits is 32 or 64;
        if (!okBits)
            throw new MediaDecodeException($"{source}: {(kind == FormatPcm ? "PCM" : "float")} with {bits} bits per sample is not supported (PCM 8/16/24/32, float 32/64).");
        if (blockAlign != channels * (bits / 8))
            throw new MediaDecodeException($"{source}: block align {blockAlign} does not equal channels × bytes per sample = {channels * (bits / 8)}.");
        return new Format(kind, channels, (int)rate, blockAlign, bits);
    }

    static AudioClip Decode(ReadOnlySpan<byte> d, Format f, string source)
    {
        if (d.Length % f.BlockAlign != 0)
            throw new MediaDecodeException($"{source}: 'data' chunk of {d.Length} bytes is not a whole number of {f.BlockAlign}-byte frames (truncated?).");
        long frames = d.Length / f.BlockAlign;
        if (frames == 0) throw new MediaDecodeException($"{source}: the 'data' chunk holds no samples.");
        var s = new float[frames * f.Channels];
        int bytesPer = f.Bits / 8;
        for (int i = 0; i < s.Length; i++)
        {
            var b = d.Slice(i * bytesPer, bytesPer);
            s[i] = (f.Kind, f.Bits) switch
            {
                (FormatPcm, 8) => (b[0] - 128) / 128f,
                (FormatPcm, 16) => BinaryPrimitives.ReadInt16LittleEndian(b) / 32768f,
                (FormatPcm, 24) => ((b[0] | b[1] << 8 | (sbyte)b[2] << 16)) / 8388608f,
                (FormatPcm, 32) => (float)(BinaryPrimitives.ReadInt32LittleEndian(b) / 2147483648.0),
                (FormatFloat, 32) => BinaryPrimitives.ReadSingleLittleEndian(b),
                _ => (float)BinaryPrimitives.ReadDoubleLittleEndian(b),
            };
            if (!float.IsFinite(s[i])) throw new MediaDecodeException($"{source}: sample {i} is not a finite number.");
        }
        return new AudioClip(s, f.SampleRate, f.Channels);
    }
}

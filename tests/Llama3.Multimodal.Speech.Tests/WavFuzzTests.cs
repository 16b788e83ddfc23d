using Llama3.Multimodal.Speech;
using Llama3.Multimodal.Tests.Shared;
using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Speech.Tests;

/// <summary>Seeded mutations of WAV files: parsed, or a <see cref="MediaDecodeException"/>, fast and bounded.</summary>
public class WavFuzzTests
{
    static byte[] Wav(short bits, short format, int rate, short channels, int frames)
    {
        using var ms = new MemoryStream();
        using var w = new BinaryWriter(ms);
        int block = channels * bits / 8, data = frames * block;
        w.Write("RIFF"u8); w.Write(36 + data); w.Write("WAVE"u8);
        w.Write("fmt "u8); w.Write(16); w.Write(format); w.Write(channels); w.Write(rate); w.Write(rate * block); w.Write((short)block); w.Write(bits);
        w.Write("data"u8); w.Write(data);
        var rng = new Random(1);
        for (int i = 0; i < data; i++) w.Write((byte)rng.Next(256));
        w.Flush();
        return ms.ToArray();
    }

    [Fact]
    public void MutatedPcmWavFilesFailCleanly() =>
        Fuzz.Run(Wav(16, 1, 16000, 1, 800), 3000, 11, ".wav", p => WavReader.Read(p), typeof(MediaDecodeException));

    [Fact]
    public void MutatedFloatStereoWavFilesFailCleanly() =>
        Fuzz.Run(Wav(32, 3, 44100, 2, 400), 2000, 12, ".wav", p => WavReader.Read(p), typeof(MediaDecodeException));
}

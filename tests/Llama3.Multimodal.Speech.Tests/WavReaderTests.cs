using System.Text;

namespace Llama3.Multimodal.Speech.Tests;

public class WavReaderTests
{
    static double[] Signal(int n, double phase) => Enumerable.Range(0, n).Select(i => 0.8 * Math.Sin(0.05 * i + phase) * Math.Cos(0.0031 * i)).ToArray();

    [Theory]
    [InlineData(8, false, false, 1)]
    [InlineData(16, false, false, 1)]
    [InlineData(24, false, false, 2)]
    [InlineData(32, false, false, 1)]
    [InlineData(32, true, false, 1)]
    [InlineData(64, true, false, 1)]
    [InlineData(16, false, true, 2)]
    [InlineData(24, false, true, 1)]
    [InlineData(32, true, true, 3)]
    public void ReadsEveryEncoding(int bits, bool isFloat, bool extensible, int channels)
    {
        var ch = Enumerable.Range(0, channels).Select(c => Signal(1001, c)).ToArray();
        var clip = WavReader.Parse(TestAudio.Wav(ch, 22050, bits, isFloat, extensible), "mem.wav");
        Assert.Equal(22050, clip.SampleRate);
        Assert.Equal(channels, clip.Channels);
        Assert.Equal(1001, clip.Frames);
        double tol = isFloat ? 1e-6 : Math.Max(1e-6, 1.0 / (1L << (bits - 1))); // float storage of 32-bit ints
        for (int i = 0; i < 1001; i++)
            for (int c = 0; c < channels; c++)
                Assert.True(Math.Abs(clip.Samples[i * channels + c] - ch[c][i]) <= tol, $"sample {i} ch {c}: {clip.Samples[i * channels + c]} vs {ch[c][i]}");
    }

    [Fact]
    public void StereoDownmixesToTheChannelMean()
    {
        var l = Signal(300, 0); var r = Signal(300, 1.3);
        var clip = WavReader.Parse(TestAudio.Wav(new[] { l, r }, 8000, 32, true), "mem.wav");
        var mono = clip.ToMono();
        for (int i = 0; i < 300; i++) Assert.Equal((l[i] + r[i]) / 2, mono[i], 5);
    }

    static MediaDecodeException Fails(byte[] bytes, string expect)
    {
        var e = Assert.Throws<MediaDecodeException>(() => WavReader.Parse(bytes, "bad.wav"));
        Assert.Contains("bad.wav", e.Message);
        Assert.Contains(expect, e.Message);
        return e;
    }

    [Fact]
    public void TruncatedOrHostileFilesAreRejectedByName()
    {
        var good = TestAudio.Wav(new[] { Signal(100, 0) }, 16000, 16, false);
        Fails(Array.Empty<byte>(), "empty");
        Fails(good[..10], "truncated RIFF header");
        Fails(Encoding.ASCII.GetBytes("OggS0000WAVEfmt "), "not a RIFF/WAVE");
        Fails(good[..(good.Length - 7)], "truncated");                      // RIFF size now exceeds the file
        var hostile = (byte[])good.Clone();
        int data = Find(hostile, "data");
        BitConverter.GetBytes(0x7FFFFFF0).CopyTo(hostile, data + 4);          // data chunk claims 2 GB
        Fails(hostile, "declares");
        var odd = (byte[])good.Clone();
        BitConverter.GetBytes(199).CopyTo(odd, data + 4);                     // not a whole frame
        BitConverter.GetBytes(BitConverter.ToInt32(odd, 4) - 1).CopyTo(odd, 4);
        Fails(odd[..^1], "whole number");
        var empty = TestAudio.Wav(new[] { Array.Empty<double>() }, 16000, 16, false);
        Fails(empty, "no samples");
        var adpcm = (byte[])good.Clone();
        int fmt = Find(adpcm, "fmt ");
        BitConverter.GetBytes((ushort)2).CopyTo(adpcm, fmt + 8);
        Fails(adpcm, "unsupported WAV encoding 0x0002");
        var badAlign = (byte[])good.Clone();
        BitConverter.GetBytes((ushort)3).CopyTo(badAlign, fmt + 8 + 12);
        Fails(badAlign, "block align");
        var zeroRate = (byte[])good.Clone();
        BitConverter.GetBytes(0).CopyTo(zeroRate, fmt + 8 + 4);
        Fails(zeroRate, "sample rate 0");
    }

    [Fact]
    public void MissingAndEmptyFilesGiveClearErrors()
    {
        string dir = TestAudio.TempDir();
        var e1 = Assert.Throws<MediaDecodeException>(() => AudioLoader.Load(Path.Combine(dir, "nope.wav")));
        Assert.Contains("nope.wav", e1.Message); Assert.Contains("not found", e1.Message);
        string empty = Path.Combine(dir, "empty.mp3");
        File.WriteAllBytes(empty, Array.Empty<byte>());
        var e2 = Assert.Throws<MediaDecodeException>(() => AudioLoader.Load(empty));
        Assert.Contains("empty.mp3", e2.Message); Assert.Contains("empty", e2.Message);
    }

    static int Find(byte[] b, string tag)
    {
        var t = Encoding.ASCII.GetBytes(tag);
        for (int i = 12; i < b.Length - 4; i++) if (b.AsSpan(i, 4).SequenceEqual(t)) return i;
        throw new InvalidOperationException(tag);
    }
}

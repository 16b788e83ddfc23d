using Llama3.Multimodal.Text;
namespace Llama3.Multimodal.Speech.Tests;

public class FfmpegDecodeTests
{
    static double Rms(float[] x) => Math.Sqrt(x.Sum(v => (double)v * v) / x.Length);

    [Fact]
    public void CompressedFormatsDecodeLikeTheWav()
    {
        string dir = TestAudio.TempDir();
        string wav = TestAudio.SharedSpeech;
        var reference = AudioLoader.Load(wav);
        var flac = AudioLoader.Load(TestAudio.Convert(wav, Path.Combine(dir, "s.flac")));
        Assert.Equal(reference.Length, flac.Length);
        for (int i = 0; i < reference.Length; i++) Assert.True(Math.Abs(reference[i] - flac[i]) < 1e-4, $"flac sample {i}");
        foreach (var ext in new[] { "mp3", "ogg" })
        {
            var y = AudioLoader.Load(TestAudio.Convert(wav, Path.Combine(dir, "s." + ext)));
            Assert.InRange(y.Length / 16000.0, reference.Length / 16000.0 - 0.1, reference.Length / 16000.0 + 0.15);
            Assert.InRange(Rms(y), Rms(reference) * 0.85, Rms(reference) * 1.15);
        }
        // A stereo 44.1 kHz FLAC goes through ffmpeg at its own rate, then our downmix and resampler.
        var left = TestAudio.Tone(1000, 44100, 0.5, 0.5).Select(v => (double)v).ToArray();
        var right = TestAudio.Tone(1000, 44100, 0.5, 0.3).Select(v => (double)v).ToArray();
        string stWav = Path.Combine(dir, "stereo.wav");
        File.WriteAllBytes(stWav, TestAudio.Wav(new[] { left, right }, 44100, 16, false));
        string stFlac = TestAudio.Convert(stWav, Path.Combine(dir, "stereo.flac"));
        var clip = AudioLoader.Decode(stFlac);
        Assert.Equal(44100, clip.SampleRate);
        Assert.Equal(2, clip.Channels);
        var mono = AudioLoader.Load(stFlac);
        Assert.Equal(8000, mono.Length);
        var ideal = TestAudio.Tone(1000, 16000, 0.5, 0.4);
        for (int i = 400; i < 7600; i++) Assert.True(Math.Abs(mono[i] - ideal[i]) < 2e-3, $"sample {i}");
    }

    [Fact]
    public void InMemoryAudioDecodesExactlyLikeItsFile()
    {
        // Shards and Parquet hold encoded audio in memory: WAV is parsed directly, the rest goes through ffmpeg's stdin.
        string dir = TestAudio.TempDir();
        string wav = TestAudio.SharedSpeech;
        foreach (var path in new[] { wav, TestAudio.Convert(wav, Path.Combine(dir, "m.flac")), TestAudio.Convert(wav, Path.Combine(dir, "m.mp3")) })
        {
            var fromFile = AudioLoader.Decode(path);
            var fromBytes = AudioLoader.Decode(File.ReadAllBytes(path), "shard.tar, key m");
            Assert.Equal((fromFile.SampleRate, fromFile.Channels), (fromBytes.SampleRate, fromBytes.Channels));
            Assert.Equal(fromFile.Samples, fromBytes.Samples);
        }
        var junk = Enumerable.Range(0, 4000).Select(i => (byte)(i * 7919 % 251)).ToArray();
        var e = Assert.Throws<MediaDecodeException>(() => AudioLoader.Decode(junk, "shard-000003.tar, key abc"));
        Assert.Contains("shard-000003.tar, key abc", e.Message);
        Assert.Throws<MediaDecodeException>(() => AudioLoader.Decode(Array.Empty<byte>(), "x"));
    }

    [Fact]
    public void CorruptFilesAndMissingFfmpegGiveClearErrors()
    {
        string dir = TestAudio.TempDir();
        string junk = Path.Combine(dir, "junk.mp3");
        File.WriteAllBytes(junk, Enumerable.Range(0, 4000).Select(i => (byte)(i * 7919 % 251)).ToArray());
        var e = Assert.Throws<MediaDecodeException>(() => AudioLoader.Load(junk));
        Assert.Contains("junk.mp3", e.Message);
        var e2 = Assert.Throws<MediaDecodeException>(() => FfmpegDecoder.Decode(junk, "/nonexistent/bin/ffmpeg"));
        Assert.Contains("junk.mp3", e2.Message);
        Assert.Contains("needs ffmpeg", e2.Message);
        string truncated = Path.Combine(dir, "cut.wav");
        var bytes = File.ReadAllBytes(TestAudio.SharedSpeech);
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
        var e3 = Assert.Throws<MediaDecodeException>(() => AudioLoader.Load(truncated));
        Assert.Contains("cut.wav", e3.Message);
    }
}

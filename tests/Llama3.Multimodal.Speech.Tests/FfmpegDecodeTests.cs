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
        // A stereo 44.1 kHz file made by ffmpeg goes through the same downmix and resampler.
        var st = AudioLoader.Decode(TestAudio.Convert(wav, Path.Combine(dir, "st.m4a")) is var m4a ? m4a : "");
        Assert.True(st.SampleRate > 0);
        string stereo = Path.Combine(dir, "stereo.flac");
        TestAudio.Convert(wav, stereo.Replace(".flac", ".tmp.wav"));
        var clip = AudioLoader.Decode(TestAudio.Convert(TestAudio.WriteWav(dir, "tone.wav", TestAudio.Tone(1000, 44100, 0.5), 44100), Path.Combine(dir, "tone.ogg")));
        Assert.Equal(44100, clip.SampleRate);
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

using System.Text.Json;
using Llama3.Multimodal.Tools.Mm;

namespace Llama3.Multimodal.Tools.Tests;

using static CliRunner;

public class SpeechCommandTests
{
    /// <summary>A 16-bit mono WAV of a rising tone, written by hand.</summary>
    static string ToneWav(string dir, double seconds)
    {
        int rate = 22050, n = (int)(rate * seconds);
        string p = Path.Combine(dir, "tone.wav");
        using var w = new BinaryWriter(File.Create(p));
        w.Write("RIFF"u8); w.Write(36 + n * 2); w.Write("WAVE"u8);
        w.Write("fmt "u8); w.Write(16); w.Write((short)1); w.Write((short)1); w.Write(rate); w.Write(rate * 2); w.Write((short)2); w.Write((short)16);
        w.Write("data"u8); w.Write(n * 2);
        for (int i = 0; i < n; i++) w.Write((short)(12000 * Math.Sin(2 * Math.PI * (300 + 200.0 * i / n) * i / rate)));
        return p;
    }

    [Fact]
    public void TranscribeRunsASpeechModelFolderAndPrintsStats()
    {
        string dir = Temp();
        var init = Mm("speech-init", "--preset", "tiny-speech", "--seed", "3", "--out", dir);
        Assert.True(init.Code == 0, init.Err);
        Assert.True(File.Exists(Path.Combine(dir, "tokenizer.model")));
        string wav = ToneWav(dir, 1.5);
        var a = Mm("transcribe", "--model", dir, wav, "--max-new-tokens", "4", "--stats");
        Assert.True(a.Code == 0, a.Err);
        var b = Mm("transcribe", "--model", dir, wav, "--max-new-tokens", "4");
        Assert.Equal(a.Out, b.Out);
        using var stats = JsonDocument.Parse(a.Err.Trim());
        Assert.Equal(1.5, stats.RootElement.GetProperty("audio_s").GetDouble(), 2);
        Assert.True(stats.RootElement.GetProperty("real_time_factor").GetDouble() > 0);
        MmCliTests.AssertGenerationStats(a.Err);
        var t = Mm("transcribe", "--model", dir, wav, "--max-new-tokens", "4", "--translate", "--language", "French");
        Assert.Equal(0, t.Code);
    }

    [Fact]
    public void TranscribeReportsBadInputsAsOneLineErrors()
    {
        string dir = Temp();
        Assert.Equal(0, Mm("speech-init", "--out", dir).Code);
        var r = Mm("transcribe", "--model", dir, Path.Combine(dir, "missing.wav"));
        Assert.Equal(2, r.Code);
        Assert.Contains("missing.wav", r.Err);
        string bad = Path.Combine(dir, "bad.wav");
        File.WriteAllBytes(bad, "RIFF\u0004\0\0\0WAVE"u8.ToArray());
        r = Mm("transcribe", "--model", dir, bad);
        Assert.Equal(2, r.Code);
        Assert.Contains("bad.wav", r.Err);
        r = Mm("transcribe", "--model", Path.Combine(dir, "nope"), bad);
        Assert.Equal(2, r.Code);
        Assert.Contains("nope", r.Err);
        r = Mm("speech-init", "--preset", "huge", "--out", Temp());
        Assert.Equal(2, r.Code);
        Assert.Contains("unknown speech preset", r.Err);
    }
}

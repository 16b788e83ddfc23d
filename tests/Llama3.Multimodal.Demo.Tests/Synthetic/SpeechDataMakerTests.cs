namespace Llama3.Multimodal.Demo.Tests;

public class SpeechDataMakerTests
{
    // Reads a canonical PCM WAV: (sample rate, channels, bits, samples); walks the RIFF chunks.
    static (int Rate, int Channels, int Bits, short[] Samples) ReadWav(string path)
    {
        var b = File.ReadAllBytes(path);
        Assert.Equal("RIFF", System.Text.Encoding.ASCII.GetString(b, 0, 4));
        Assert.Equal("WAVE", System.Text.Encoding.ASCII.GetString(b, 8, 4));
        int pos = 12, rate = 0, ch = 0, bits = 0;
        while (pos + 8 <= b.Length)
        {
            string id = System.Text.Encoding.ASCII.GetString(b, pos, 4);
            int len = BitConverter.ToInt32(b, pos + 4);
            if (id == "fmt ") { Assert.Equal(1, BitConverter.ToInt16(b, pos + 8)); ch = BitConverter.ToInt16(b, pos + 10); rate = BitConverter.ToInt32(b, pos + 12); bits = BitConverter.ToInt16(b, pos + 22); }
            if (id == "data")
            {
                var s = new short[Math.Min(len, b.Length - pos - 8) / 2];
                Buffer.BlockCopy(b, pos + 8, s, 0, s.Length * 2);
                return (rate, ch, bits, s);
            }
            pos += 8 + len + (len & 1);
        }
        throw new Xunit.Sdk.XunitException($"{path}: no data chunk");
    }

    [Fact]
    public void MakesNonSilent16kMonoWavsReproducibly()
    {
        var o = new SpeechMakerOptions(6, Seed: 4);
        var a = SpeechDataMaker.Make(o, SyntheticTestFiles.NewDir("sp-a"));
        var b = SpeechDataMaker.Make(o, SyntheticTestFiles.NewDir("sp-b"));
        Assert.Equal(6, Directory.GetFiles(Path.Combine(a.Directory, "audio"), "*.wav").Length);
        Assert.Equal(File.ReadAllBytes(a.ManifestPath), File.ReadAllBytes(b.ManifestPath));
        Assert.Equal(File.ReadAllBytes(a.LabelsPath!), File.ReadAllBytes(b.LabelsPath!));
        var recs = JsonlManifest.ReadAudioTexts(a.ManifestPath, skipBad: false, out _);
        Assert.Equal(6, recs.Count);
        var labels = SyntheticTestFiles.ReadJsonl(a.LabelsPath!);
        var typed = SyntheticLabels.ReadSpeech(a.LabelsPath!);
        Assert.Equal(recs.Select(r => r.Text), typed.Select(t => t.Text));
        Assert.All(typed, t => Assert.Contains(t.Speed, SpeechMakerOptions.DefaultSpeeds));
        for (int i = 0; i < recs.Count; i++)
        {
            Assert.Equal(File.ReadAllBytes(recs[i].Audio), File.ReadAllBytes(Path.Combine(b.Directory, SyntheticTestFiles.Str(labels[i], "audio")!)));
            var (rate, ch, bits, s) = ReadWav(recs[i].Audio);
            Assert.Equal((16000, 1, 16), (rate, ch, bits));
            double seconds = s.Length / 16000.0;
            Assert.InRange(seconds, 0.4, 10);
            double rms = Math.Sqrt(s.Average(x => (double)x * x)) / 32768;
            Assert.True(rms > 0.01, $"{recs[i].Audio} is near silent (rms {rms:F4})");
            Assert.Equal(EnglishNormalizer.Normalize(recs[i].Text), recs[i].Text);   // transcripts are already normalised
            Assert.NotNull(SyntheticTestFiles.Str(labels[i], "voice"));
        }
    }

    [Fact]
    public void HeldOutVoicesAndSpeedsAreKeptApart()
    {
        var held = new SpeechMakerOptions(10, Seed: 2, Variants: new[] { "", "+f2" }, HeldOutVoices: new[] { "en-029", "en-us+f2" }, HeldOutSpeeds: new[] { 190 }, Mode: HeldOutMode.Exclude);
        var train = SpeechDataMaker.Make(held, SyntheticTestFiles.NewDir("sp-train"));
        foreach (var l in SyntheticTestFiles.ReadJsonl(train.LabelsPath!))
        {
            string v = SyntheticTestFiles.Str(l, "voice")!;
            Assert.False(v.StartsWith("en-029", StringComparison.Ordinal) || v == "en-us+f2", v);
            Assert.NotEqual(190, l["speed"]!.GetValue<int>());
        }
        var eval = SpeechDataMaker.Make(held with { Count = 4, Seed = 3, Mode = HeldOutMode.Only }, SyntheticTestFiles.NewDir("sp-eval"));
        foreach (var l in SyntheticTestFiles.ReadJsonl(eval.LabelsPath!))
        {
            string v = SyntheticTestFiles.Str(l, "voice")!;
            Assert.True(v.StartsWith("en-029", StringComparison.Ordinal) || v == "en-us+f2", v);
            Assert.Equal(190, l["speed"]!.GetValue<int>());
        }
        var e = Assert.Throws<SyntheticDataException>(() => SpeechDataMaker.Make(held with { HeldOutSpeeds = new[] { 175 } }, SyntheticTestFiles.NewDir("sp-bad")));
        Assert.Contains("175", e.Message);
        e = Assert.Throws<SyntheticDataException>(() => SpeechDataMaker.Make(held with { Variants = new[] { "+nope" } }, SyntheticTestFiles.NewDir("sp-bad")));
        Assert.Contains("+nope", e.Message);
        e = Assert.Throws<SyntheticDataException>(() => SpeechDataMaker.Make(held with { Voices = new[] { "xx-nowhere" } }, SyntheticTestFiles.NewDir("sp-bad")));
        Assert.Contains("xx-nowhere", e.Message);
    }

    [Fact]
    public void MissingToolIsNamedWithItsInstallCommand()
    {
        var e = Assert.Throws<SyntheticDataException>(() => ExternalTool.Require("espeak-ng-not-installed", "espeak-ng"));
        Assert.Contains("espeak-ng-not-installed", e.Message);
        Assert.Contains("apt-get install -y espeak-ng", e.Message);
    }
}

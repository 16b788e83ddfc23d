using System.Diagnostics;
using Llama3.Multimodal.Tools.Mm;
using SkiaSharp;

namespace Llama3.Multimodal.Tools.Tests;

/// <summary>The sample programs run end to end on small random-weight models and real media made here.</summary>
public class SamplesTests
{
    static (int Code, string Out) Run(string dll, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, dll));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(180_000)) { p.Kill(true); Assert.Fail($"{dll} timed out"); }
        return (p.ExitCode, o.Result + e.Result);
    }

    static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (Directory.Exists(Path.Combine(d.FullName, "assets", "models", "demo"))) return d.FullName;
        throw new DirectoryNotFoundException("assets/models/demo not found above the test binaries.");
    }

    static string Init(string preset)
    {
        string dir = Directory.CreateTempSubdirectory("l3mm-sample").FullName;
        var w = new StringWriter();
        Assert.True(MmCli.Run(new[] { "init", "--config", preset, "--seed", "1", "--out", dir }, w, w) == 0, w.ToString());
        return dir;
    }

    static string Tool(string name, string args)
    {
        var psi = new ProcessStartInfo(name, args) { RedirectStandardError = true, RedirectStandardOutput = true };
        using var p = Process.Start(psi) ?? throw new InvalidOperationException(name);
        p.WaitForExit(60_000);
        Assert.True(p.ExitCode == 0, $"{name} {args}: {p.StandardError.ReadToEnd()}");
        return args;
    }

    [Fact]
    public void CaptionAndChatClientSamplesRun()
    {
        string model = Init("tiny-vision");
        string png = Path.Combine(Directory.CreateTempSubdirectory("l3mm-sample").FullName, "s.png");
        using (var bmp = new SKBitmap(64, 48))
        {
            bmp.Erase(SKColors.Orange);
            using var img = SKImage.FromBitmap(bmp);
            File.WriteAllBytes(png, img.Encode(SKEncodedImageFormat.Png, 100).ToArray());
        }
        var r = Run("Caption.dll", "--model", model, png);
        Assert.True(r.Code == 0, r.Out);
        Assert.Contains("tokens, prefill", r.Out);
        // Without --model: the shipped demo model, on a shipped sample image; it answers in its caption grammar.
        r = Run("Caption.dll", Path.Combine(RepoRoot(), "assets", "demo", "images", "000002.png"));
        Assert.True(r.Code == 0, r.Out);
        Assert.Matches(@"\b(circle|square|triangle|diamond|star|cross|word|number)", r.Out);
        r = Run("ChatClient.dll", "--model", model, png);
        Assert.True(r.Code == 0, r.Out);
        Assert.Equal(2, Run("Caption.dll").Code);
    }

    [Fact]
    public void TranscribeSampleRunsOnSpeechMadeByEspeak()
    {
        if (!File.Exists("/usr/bin/espeak-ng")) Assert.Fail("espeak-ng not found: apt-get install espeak-ng (build/test.sh installs it).");
        string model = Init("tiny-speech");
        string wav = Path.Combine(Directory.CreateTempSubdirectory("l3mm-sample").FullName, "hello.wav");
        Tool("espeak-ng", $"-w {wav} \"hello world\"");
        var r = Run("Transcribe.dll", "--model", model, wav);
        Assert.True(r.Code == 0, r.Out);
        Assert.Contains("real-time factor", r.Out);
        r = Run("Transcribe.dll", Path.Combine(RepoRoot(), "assets", "demo", "speech", "000000.wav"));
        Assert.True(r.Code == 0, r.Out);
        Assert.Contains("real-time factor", r.Out);
        Assert.Equal("the triangle moves right then it turns green", r.Out.Split('\n')[0].Trim());   // a voice never heard in training
    }

    [Fact]
    public void SamplesReportBadInputInOneLine()
    {
        string dir = Directory.CreateTempSubdirectory("l3mm-sample").FullName;
        string missing = Path.Combine(dir, "missing.png"), noise = Path.Combine(dir, "noise.wav"), clip = Path.Combine(dir, "clip.mp4");
        File.WriteAllBytes(noise, Enumerable.Range(0, 300).Select(i => (byte)(i * 7)).ToArray());
        File.WriteAllText(clip, "not a video");
        foreach (var (dll, args, names) in new[]
        {
            ("Caption.dll", new[] { missing }, missing),
            ("Transcribe.dll", new[] { noise }, noise),
            ("VideoQA.dll", new[] { clip }, clip),
            ("Caption.dll", new[] { "--model", dir, missing }, dir),
        })
        {
            var r = Run(dll, args);
            Assert.True(r.Code == 1, $"{dll}: exit {r.Code}: {r.Out}");
            Assert.StartsWith("error: ", r.Out.TrimStart());
            Assert.Contains(names, r.Out);
            Assert.DoesNotContain("   at ", r.Out);                  // a message, not a stack trace
        }
    }

    [Fact]
    public void VideoQaSampleRunsOnAClipMadeByFfmpeg()
    {
        if (!File.Exists("/usr/bin/ffmpeg")) Assert.Fail("ffmpeg not found: apt-get install ffmpeg (build/test.sh installs it).");
        string model = Init("tiny-video");
        string clip = Path.Combine(Directory.CreateTempSubdirectory("l3mm-sample").FullName, "c.mp4");
        Tool("ffmpeg", $"-v error -f lavfi -i testsrc=size=48x48:rate=8:duration=1 -pix_fmt yuv420p -y {clip}");
        var r = Run("VideoQA.dll", "--model", model, clip, "What happens?");
        Assert.True(r.Code == 0, r.Out);
        r = Run("VideoQA.dll", Path.Combine(RepoRoot(), "assets", "demo", "videos", "000000.mp4"));
        Assert.True(r.Code == 0, r.Out);
        Assert.Matches(@"\b(moves|appears|disappears|turns)\b", r.Out);
    }
}

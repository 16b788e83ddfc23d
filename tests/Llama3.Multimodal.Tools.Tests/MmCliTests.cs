using System.Text.Json;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Tools.Mm;

namespace Llama3.Multimodal.Tools.Tests;

using static CliRunner;

public class MmCliTests
{
    static string TinyModel(long seed = 1)
    {
        string dir = Temp();
        var r = Mm("init", "--config", "tiny", "--seed", seed.ToString(), "--out", dir);
        Assert.True(r.Code == 0, r.Err);
        return dir;
    }

    /// <summary>The --stats line of a generating command: the shared keys, and time to first token counted from the start of loading.</summary>
    internal static void AssertGenerationStats(string stderr)
    {
        using var stats = JsonDocument.Parse(stderr.Trim());
        var s = stats.RootElement;
        double load = s.GetProperty("load_s").GetDouble(), first = s.GetProperty("first_token_s").GetDouble();
        Assert.True(load > 0);
        Assert.True(first >= load, $"first_token_s {first} < load_s {load}");
        Assert.True(first >= s.GetProperty("prefill_s").GetDouble());
        Assert.True(s.GetProperty("decode_tokens_per_s").GetDouble() >= 0);
        Assert.True(s.GetProperty("peak_rss_mb").GetDouble() > 0);
    }

    [Fact]
    public void InitWritesAnHfCheckpointThatLoads()
    {
        string dir = TinyModel();
        foreach (var f in new[] { "config.json", "model.safetensors", "tokenizer.model", "generation_config.json" })
            Assert.True(File.Exists(Path.Combine(dir, f)), f);
        using var m = LlamaForCausalLM.FromPretrained(dir);
        Assert.Equal(TextPresets.Get("tiny").HiddenSize, m.Config.HiddenSize);
        // Same seed, same bytes.
        string again = TinyModel();
        Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "model.safetensors")), File.ReadAllBytes(Path.Combine(again, "model.safetensors")));
    }

    [Fact]
    public void GenerateIsDeterministicAndPrintsStats()
    {
        string dir = TinyModel();
        var a = Mm("generate", "--model", dir, "--prompt", "Hello", "--max-new-tokens", "5", "--stats");
        var b = Mm("generate", "--model", dir, "--prompt", "Hello", "--max-new-tokens", "5");
        Assert.Equal(0, a.Code);
        Assert.Equal(a.Out, b.Out);
        AssertGenerationStats(a.Err);
        using var stats = JsonDocument.Parse(a.Err.Trim());
        Assert.True(stats.RootElement.GetProperty("decode_tokens_per_s").GetDouble() > 0);
        Assert.True(stats.RootElement.GetProperty("peak_rss_mb").GetDouble() > 0);
        Assert.Equal(2, stats.RootElement.GetProperty("prompt_tokens").GetInt32());
        // Layer placement: an explicit list, or auto (by free GPU memory; with fewer than two GPUs, no split).
        var listed = Mm("generate", "--model", dir, "--prompt", "Hello", "--max-new-tokens", "5", "--devices", "cpu,cpu");
        Assert.Equal(b.Out, listed.Out);
        if (!TorchSharp.torch.cuda.is_available())
        {
            var auto = Mm("generate", "--model", dir, "--prompt", "Hello", "--max-new-tokens", "5", "--devices", "auto");
            Assert.Equal(b.Out, auto.Out);
            Assert.Contains("--devices auto: 0 CUDA device(s) visible; no split.", auto.Err);
        }
    }

    [Fact]
    public void GenerateWithBeams()
    {
        string dir = TinyModel();
        var beams = Mm("generate", "--model", dir, "--prompt", "Hello", "--max-new-tokens", "4", "--num-beams", "3");
        Assert.Equal(0, beams.Code);
        Assert.False(string.IsNullOrWhiteSpace(beams.Out));
        var bad = Mm("generate", "--model", dir, "--prompt", "Hello", "--num-beams", "3", "--temperature", "0.5");
        Assert.NotEqual(0, bad.Code);
        Assert.Contains("temperature 0", bad.Err);
    }

    [Fact]
    public void LogitsMatchTheLibraryAndSurviveConversionToMeta()
    {
        string dir = TinyModel(3);
        var hf = Mm("logits", "--model", dir, "--ids", "128000,9906,1917", "--positions", "all");
        Assert.Equal(0, hf.Code);
        using var doc = JsonDocument.Parse(hf.Out);
        var rows = doc.RootElement.GetProperty("logits");
        Assert.Equal(3, rows.GetArrayLength());
        Assert.Equal(128256, rows[0].GetArrayLength());
        string meta = Temp();
        Assert.Equal(0, Mm("convert", "--from", "hf", "--to", "meta", "--model", dir, "--out", meta).Code);
        Assert.True(File.Exists(Path.Combine(meta, "params.json")));
        var m = Mm("logits", "--model", meta, "--ids", "128000,9906,1917", "--positions", "all");
        Assert.Equal(hf.Out, m.Out);
        string back = Temp();
        Assert.Equal(0, Mm("convert", "--from", "meta", "--to", "hf", "--model", meta, "--out", back).Code);
        Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "model.safetensors")), File.ReadAllBytes(Path.Combine(back, "model.safetensors")));
        var last = Mm("logits", "--model", dir, "--ids", "128000,9906,1917", "--positions", "last");
        using var ldoc = JsonDocument.Parse(last.Out);
        // Same values up to GEMM rounding (a 1-row and a 3-row product may round differently).
        var lastRow = ldoc.RootElement.GetProperty("logits")[0].EnumerateArray().Select(x => x.GetSingle()).ToArray();
        var fullRow = rows[2].EnumerateArray().Select(x => x.GetSingle()).ToArray();
        Assert.Equal(fullRow.Length, lastRow.Length);
        Assert.True(fullRow.Zip(lastRow).Max(p => Math.Abs(p.First - p.Second)) < 1e-5f);
    }

    [Fact]
    public void ChatKeepsTheDialogAndAnswersEachTurn()
    {
        string dir = TinyModel();
        var o = new StringWriter();
        var e = new StringWriter();
        int code = MmCli.Run(new[] { "chat", "--model", dir, "--max-new-tokens", "4", "--system", "Be brief." }, o, e,
            new StringReader("Hello\nHow are you?\n/exit\n"));
        Assert.True(code == 0, e.ToString());
        // Two prompts, two answers, then the exit prompt.
        Assert.Equal(3, o.ToString().Split("> ").Length - 1);
        // The second answer is the greedy answer to the whole dialog, as the library gives it.
        using var m = LlamaForCausalLM.FromPretrained(dir);
        var tok = Llama3Tokenizer.Default;
        var g = new TextGenerator(m, tok);
        var opts = new GenerationOptions { MaxNewTokens = 4 };
        var first = g.Generate(new ChatFormat(tok).EncodeDialog(new[] { new ChatMessage("system", "Be brief."), new ChatMessage("user", "Hello") }), opts);
        var second = g.Generate(new ChatFormat(tok).EncodeDialog(new[] { new ChatMessage("system", "Be brief."), new ChatMessage("user", "Hello"),
            new ChatMessage("assistant", first.Text), new ChatMessage("user", "How are you?") }), opts);
        Assert.Contains(first.Text, o.ToString());
        Assert.Contains(second.Text, o.ToString());
    }

    [Fact]
    public void InitAndGenerateRouteToTheModalityOfThePresetOrModel()
    {
        Assert.Equal("vision-init", MmCli.Route(new[] { "init", "--config", "tiny-vision", "--out", "x" })[0]);
        Assert.Equal(new[] { "speech-init", "--preset", "tiny-speech", "--out", "x" }, MmCli.Route(new[] { "init", "--config", "tiny-speech", "--out", "x" }));
        Assert.Equal("init", MmCli.Route(new[] { "init", "--config", "tiny", "--out", "x" })[0]);
        Assert.Equal("vision-generate", MmCli.Route(new[] { "generate", "--model", "m", "--image", "a.png", "--prompt", "p" })[0]);
        Assert.Equal("generate", MmCli.Route(new[] { "generate", "--model", "m", "--prompt", "p" })[0]);
        Assert.Equal("video-init", MmCli.Route(new[] { "init", "--config", "tiny-video", "--out", "x" })[0]);
        Assert.Equal("video-generate", MmCli.Route(new[] { "generate", "--model", "m", "--video", "c.mp4", "--prompt", "p" })[0]);

        string dir = Temp();
        var r = Mm("init", "--config", "tiny-vision", "--seed", "2", "--out", dir);
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("\"mllama\"", File.ReadAllText(Path.Combine(dir, "config.json")));
        Assert.Equal("vision-generate", MmCli.Route(new[] { "generate", "--model", dir, "--prompt", "p" })[0]);
        string png = Path.Combine(Temp(), "x.png");
        using (var bmp = new SkiaSharp.SKBitmap(40, 30))
        {
            bmp.Erase(SkiaSharp.SKColors.Green);
            using var img = SkiaSharp.SKImage.FromBitmap(bmp);
            File.WriteAllBytes(png, img.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100).ToArray());
        }
        r = Mm("generate", "--model", dir, "--image", png, "--prompt", "What colour?", "--max-new-tokens", "3", "--stats");
        Assert.True(r.Code == 0, r.Err);
        AssertGenerationStats(r.Err);
        // The image encoder's time is reported on its own, and it runs before the first token.
        using (var stats = JsonDocument.Parse(r.Err.Trim()))
        {
            double enc = stats.RootElement.GetProperty("encoder_s").GetDouble();
            Assert.True(enc > 0 && enc <= stats.RootElement.GetProperty("first_token_s").GetDouble(), $"encoder_s {enc}");
        }
        using var vlm = Vision.VisionLanguageModel.FromPretrained(dir);
        Assert.Equal(vlm.Generate(new[] { png }, "What colour?", new GenerationOptions { MaxNewTokens = 3 }).Text, r.Out.TrimEnd('\n'));
    }

    [Fact]
    public void VideoInitAndGenerateRunOnAClipMadeByFfmpeg()
    {
        if (!File.Exists("/usr/bin/ffmpeg")) Assert.Fail("ffmpeg not found: apt-get install ffmpeg (build/test.sh installs it).");
        string dir = Temp();
        var r = Mm("init", "--config", "tiny-video", "--seed", "4", "--out", dir);
        Assert.True(r.Code == 0, r.Err);
        string clip = Path.Combine(Temp(), "clip.mp4");
        var psi = new System.Diagnostics.ProcessStartInfo("ffmpeg", $"-v error -f lavfi -i testsrc=size=64x64:rate=8:duration=2 -pix_fmt yuv420p -y {clip}") { RedirectStandardError = true };
        using (var p = System.Diagnostics.Process.Start(psi)!) { p.WaitForExit(60_000); Assert.Equal(0, p.ExitCode); }
        r = Mm("generate", "--model", dir, "--video", clip, "--prompt", "What happens?", "--max-new-tokens", "3", "--stats");
        Assert.True(r.Code == 0, r.Err);
        AssertGenerationStats(r.Err);
        using var m = Video.VideoLanguageModel.FromPretrained(dir);
        Assert.Equal(m.Generate(clip, "What happens?", new GenerationOptions { MaxNewTokens = 3 }).Text, r.Out.TrimEnd('\n'));
        r = Mm("generate", "--model", dir, "--video", Path.Combine(dir, "config.json"), "--prompt", "x");
        Assert.Equal(2, r.Code);
        Assert.Contains("config.json", r.Err);
    }

    [Fact]
    public void TokenizePrintsIds()
    {
        var r = Mm("tokenize", "--text", "Hello world!");
        Assert.Equal("[9906,1917,0]", r.Out.Trim());
        string f = Path.Combine(Temp(), "in.json");
        File.WriteAllText(f, "[\"Hello world!\", \"I'll\"]");
        Assert.Equal("[[9906,1917,0],[40,3358]]", Mm("tokenize", "--file", f).Out.Trim());
    }

    [Fact]
    public void UserErrorsAreOneLineMessagesWithExitCode2()
    {
        string dir = TinyModel();
        var r = Mm("generate", "--model", Path.Combine(dir, "nope"), "--prompt", "x");
        Assert.Equal(2, r.Code);
        Assert.Contains("nope", r.Err);
        r = Mm("logits", "--model", dir, "--ids", "1,x");
        Assert.Equal(2, r.Code);
        r = Mm("logits", "--model", dir, "--ids", "999999999");
        Assert.Equal(2, r.Code);
        Assert.Contains("outside", r.Err);
        r = Mm("generate", "--model", dir, "--prompt", "x", "--device", "tpu");
        Assert.Equal(2, r.Code);
        r = Mm("convert", "--from", "meta", "--to", "hf", "--model", dir, "--out", Temp());
        Assert.Equal(2, r.Code);
        Assert.Contains("params.json", r.Err);
        r = Mm("init", "--config", "huge-9000", "--out", Temp());
        Assert.Equal(2, r.Code);
        Assert.Contains("unknown text preset", r.Err);
        File.WriteAllText(Path.Combine(dir, "config.json"), "{\"hidden_size\": 64, \"bogus\": 1}");
        r = Mm("generate", "--model", dir, "--prompt", "x");
        Assert.Equal(2, r.Code);
        Assert.Contains("bogus", r.Err);
    }
}

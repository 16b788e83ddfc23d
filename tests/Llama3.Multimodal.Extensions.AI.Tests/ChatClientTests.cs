using Llama3.Multimodal.Extensions.AI;
using Llama3.Multimodal.Speech;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using Microsoft.Extensions.AI;
using SkiaSharp;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace Llama3.Multimodal.Extensions.AI.Tests;

public class ChatClientTests
{
    static readonly Lazy<LlamaForCausalLM> TextModel = new(() => LlamaForCausalLM.Create(TextPresets.Get("tiny")).InitializeWeights(4, 0.2));
    static readonly Lazy<VisionLanguageModel> Vision = new(() => VisionLanguageModel.Create(VisionPresets.Get("tiny-vision")).InitializeWeights(5));
    static readonly Lazy<SpeechLanguageModel> Speech = new(() => SpeechLanguageModel.Create("tiny-speech", seed: 6));

    static byte[] Png()
    {
        using var bmp = new SKBitmap(96, 64);
        using (var c = new SKCanvas(bmp))
        {
            c.Clear(SKColors.White);
            using var paint = new SKPaint { Color = SKColors.Red, IsAntialias = true };
            c.DrawCircle(30, 32, 18, paint);
        }
        using var img = SKImage.FromBitmap(bmp);
        return img.Encode(SKEncodedImageFormat.Png, 100).ToArray();
    }

    static byte[] Wav(double seconds = 0.8)
    {
        int n = (int)(16000 * seconds);
        using var ms = new MemoryStream();
        using var w = new BinaryWriter(ms);
        w.Write("RIFF"u8); w.Write(36 + n * 2); w.Write("WAVE"u8);
        w.Write("fmt "u8); w.Write(16); w.Write((short)1); w.Write((short)1); w.Write(16000); w.Write(32000); w.Write((short)2); w.Write((short)16);
        w.Write("data"u8); w.Write(n * 2);
        for (int i = 0; i < n; i++) w.Write((short)(8000 * Math.Sin(2 * Math.PI * 440 * i / 16000.0) * Math.Sin(Math.PI * i / n)));
        w.Flush();
        return ms.ToArray();
    }

    [Fact]
    public async Task TextChatEqualsTheGeneratorAndMapsOptions()
    {
        using var client = new LlamaChatClient(TextModel.Value);
        var msgs = new[] { new AIChatMessage(ChatRole.System, "Be brief."), new AIChatMessage(ChatRole.User, "Name a colour.") };
        var opts = new ChatOptions { MaxOutputTokens = 6, Temperature = 0.9f, TopP = 0.9f, Seed = 11 };
        var r = await client.GetResponseAsync(msgs, opts);
        var ids = new ChatFormat(Llama3Tokenizer.Default).EncodeDialog(new[] { new Llama3.Multimodal.Text.ChatMessage("system", "Be brief."), new Llama3.Multimodal.Text.ChatMessage("user", "Name a colour.") });
        var expected = new TextGenerator(TextModel.Value, Llama3Tokenizer.Default).Generate(ids, new GenerationOptions { MaxNewTokens = 6, Temperature = 0.9f, TopP = 0.9f, Seed = 11 });
        Assert.Equal(expected.Text, r.Text);
        Assert.Equal(ids.Count, r.Usage!.InputTokenCount);
        Assert.Equal(expected.Tokens.Count, r.Usage.OutputTokenCount);
        if (expected.FinishReason == "length") Assert.Equal(ChatFinishReason.Length, r.FinishReason);

        var pieces = new List<string>();
        ChatFinishReason? finish = null;
        await foreach (var u in client.GetStreamingResponseAsync(msgs, opts))
        {
            if (u.Text is { Length: > 0 } t) pieces.Add(t);
            finish ??= u.FinishReason;
        }
        Assert.Equal(r.Text, string.Concat(pieces));
        Assert.Equal(r.FinishReason, finish);
    }

    [Fact]
    public async Task StopSequencesCutTheReply()
    {
        using var client = new LlamaChatClient(TextModel.Value);
        var msgs = new[] { new AIChatMessage(ChatRole.User, "Count.") };
        var full = await client.GetResponseAsync(msgs, new ChatOptions { MaxOutputTokens = 12 });
        Assert.True(full.Text.Length >= 4, full.Text);
        string stop = full.Text.Substring(2, 2);
        var cut = await client.GetResponseAsync(msgs, new ChatOptions { MaxOutputTokens = 12, StopSequences = new[] { stop } });
        Assert.Equal(full.Text[..full.Text.IndexOf(stop, StringComparison.Ordinal)], cut.Text);
        Assert.Equal(ChatFinishReason.Stop, cut.FinishReason);
    }

    [Fact]
    public async Task AnImageInDataContentReachesTheVisionModel()
    {
        using var client = new LlamaChatClient(vision: Vision.Value);
        var png = Png();
        var msg = new AIChatMessage(ChatRole.User, new List<AIContent> { new DataContent(png, "image/png"), new TextContent("Describe the image.") });
        var r = await client.GetResponseAsync(new[] { msg }, new ChatOptions { MaxOutputTokens = 5 });
        var img = ImageLoader.Decode(png, "test png");
        var ids = new ChatFormat(Vision.Value.Tokenizer).EncodeDialog(new[] { new Llama3.Multimodal.Text.ChatMessage("user", "<|image|>Describe the image.") }, true,
            new Dictionary<string, int> { ["<|image|>"] = Vision.Value.Config.ImageTokenIndex });
        var expected = Vision.Value.GenerateBatch(new[] { (IReadOnlyList<int>)ids }, new[] { (IReadOnlyList<RgbImage>)new[] { img } }, new GenerationOptions { MaxNewTokens = 5 })[0];
        Assert.Equal(expected.Text, r.Text);
        // Without a vision model the client says so.
        using var textOnly = new LlamaChatClient(TextModel.Value);
        await Assert.ThrowsAsync<NotSupportedException>(() => textOnly.GetResponseAsync(new[] { msg }));
        // A corrupt image is our decoding error, not a crash.
        var bad = new AIChatMessage(ChatRole.User, new List<AIContent> { new DataContent(new byte[] { 1, 2, 3 }, "image/png"), new TextContent("x") });
        var e = await Assert.ThrowsAnyAsync<Exception>(() => client.GetResponseAsync(new[] { bad }));
        Assert.EndsWith("DecodeException", e.GetType().Name);
    }

    [Fact]
    public async Task AWavInDataContentReachesTheSpeechModel()
    {
        using var client = new LlamaChatClient(speech: Speech.Value);
        var wav = Wav();
        var msg = new AIChatMessage(ChatRole.User, new List<AIContent> { new DataContent(wav, "audio/wav") });
        var r = await client.GetResponseAsync(new[] { msg }, new ChatOptions { MaxOutputTokens = 4 });
        var samples = AudioLoader.ToModelRate(WavReader.Parse(wav, "test wav"));
        var expected = Speech.Value.Run(samples, SpeechLanguageModel.AsrPrompt("English"), new GenerationOptions { MaxNewTokens = 4 });
        Assert.Equal(expected.Text, r.Text);

        using var stt = new LlamaSpeechToTextClient(Speech.Value);
        var t = await stt.GetTextAsync(new MemoryStream(wav), new SpeechToTextOptions { SpeechLanguage = "en" });
        var expectedAsr = Speech.Value.Run(samples, SpeechLanguageModel.AsrPrompt("English"));
        Assert.Equal(expectedAsr.Text, t.Text);
        var parts = new List<string>();
        await foreach (var u in stt.GetStreamingTextAsync(new MemoryStream(wav))) parts.Add(u.Text);
        Assert.Equal(expectedAsr.Text, string.Concat(parts));
    }
}

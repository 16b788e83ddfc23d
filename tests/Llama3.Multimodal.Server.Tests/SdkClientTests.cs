using System.ClientModel;
using Llama3.Multimodal.Speech;
using Llama3.Multimodal.Text;
using Microsoft.Extensions.AI;
using OpenAI;
using OpenAI.Audio;
using OpenAI.Chat;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace Llama3.Multimodal.Server.Tests;

/// <summary>The server through the clients people already use: the official OpenAI .NET SDK and Microsoft.Extensions.AI over it.</summary>
public class SdkClientTests : IClassFixture<ServerFixture>
{
    readonly ServerFixture _f;
    public SdkClientTests(ServerFixture f) => _f = f;

    OpenAIClientOptions Options => new() { Endpoint = new Uri(_f.Server.BaseAddress, "v1") };
    ChatClient Chat(string model) => new(model, new ApiKeyCredential("unused"), Options);

    static GenerationResult Expected(LlamaForCausalLM model, string user, int max) =>
        new TextGenerator(model, Llama3Tokenizer.Default).Generate(
            new ChatFormat(Llama3Tokenizer.Default).EncodeDialog(new[] { new Llama3.Multimodal.Text.ChatMessage("user", user) }),
            new GenerationOptions { MaxNewTokens = max });

    [Fact]
    public async Task OpenAIChatClientGetsTextAndUsage()
    {
        var expected = Expected(_f.Text, "Say something.", 8);
        ChatCompletion c = await Chat("tiny").CompleteChatAsync(new OpenAI.Chat.ChatMessage[] { new UserChatMessage("Say something.") },
            new ChatCompletionOptions { MaxOutputTokenCount = 8, Temperature = 0 });
        Assert.Equal(expected.Text, c.Content[0].Text);
        Assert.Equal(expected.Tokens.Count, c.Usage.OutputTokenCount);
        Assert.Equal(expected.FinishReason == "length" ? OpenAI.Chat.ChatFinishReason.Length : OpenAI.Chat.ChatFinishReason.Stop, c.FinishReason);
        Assert.Equal("tiny", c.Model);
    }

    [Fact]
    public async Task OpenAIChatClientSendsAnImagePart()
    {
        var png = File.ReadAllBytes(Repo.Image(2));
        string expected = _f.Vision.Caption(Repo.Image(2), options: new GenerationOptions { MaxNewTokens = 24 });
        Assert.Equal("two large red diamonds", expected);
        var msg = new UserChatMessage(ChatMessageContentPart.CreateImagePart(BinaryData.FromBytes(png), "image/png"));
        ChatCompletion c = await Chat("vision").CompleteChatAsync(new OpenAI.Chat.ChatMessage[] { msg }, new ChatCompletionOptions { MaxOutputTokenCount = 24, Temperature = 0 });
        Assert.Equal(expected, c.Content[0].Text.Trim());
        // Streaming the same request gives the same text, piece by piece.
        var pieces = new List<string>();
        OpenAI.Chat.ChatFinishReason? finish = null;
        await foreach (var u in Chat("vision").CompleteChatStreamingAsync(new OpenAI.Chat.ChatMessage[] { msg }, new ChatCompletionOptions { MaxOutputTokenCount = 24, Temperature = 0 }))
        {
            foreach (var part in u.ContentUpdate) pieces.Add(part.Text);
            finish ??= u.FinishReason;
        }
        Assert.Equal(expected, string.Concat(pieces).Trim());
        Assert.Equal(OpenAI.Chat.ChatFinishReason.Stop, finish);
    }

    [Fact]
    public async Task OpenAIChatClientStreamsText()
    {
        var expected = Expected(_f.Text, "Stream please.", 10);
        var pieces = new List<string>();
        int updates = 0;
        await foreach (var u in Chat("tiny").CompleteChatStreamingAsync(new OpenAI.Chat.ChatMessage[] { new UserChatMessage("Stream please.") },
            new ChatCompletionOptions { MaxOutputTokenCount = 10, Temperature = 0 }))
        {
            updates++;
            foreach (var part in u.ContentUpdate) pieces.Add(part.Text);
        }
        Assert.Equal(expected.Text, string.Concat(pieces));
        Assert.True(updates > 2, $"{updates} updates");
    }

    [Fact]
    public async Task ExtensionsAIChatClientOverTheSdk()
    {
        IChatClient client = Chat("tiny").AsIChatClient();
        var expected = Expected(_f.Text, "Hello there.", 6);
        var r = await client.GetResponseAsync(new[] { new AIChatMessage(ChatRole.User, "Hello there.") }, new ChatOptions { MaxOutputTokens = 6, Temperature = 0 });
        Assert.Equal(expected.Text, r.Text);
        Assert.Equal(expected.Tokens.Count, r.Usage!.OutputTokenCount);
        var streamed = new List<string>();
        await foreach (var u in client.GetStreamingResponseAsync(new[] { new AIChatMessage(ChatRole.User, "Hello there.") }, new ChatOptions { MaxOutputTokens = 6, Temperature = 0 }))
            streamed.Add(u.Text);
        Assert.Equal(expected.Text, string.Concat(streamed));
        // An image through MEAI's DataContent reaches the vision model.
        IChatClient vision = Chat("vision").AsIChatClient();
        var img = await vision.GetResponseAsync(new[] { new AIChatMessage(ChatRole.User, new List<AIContent> { new DataContent(File.ReadAllBytes(Repo.Image(1)), "image/png") }) },
            new ChatOptions { MaxOutputTokens = 24, Temperature = 0 });
        Assert.Equal("a small purple diamond at the bottom", img.Text.Trim());
        // A refused request surfaces as the SDK's error with our status and message.
        var e = await Assert.ThrowsAsync<ClientResultException>(() => Chat("nope").CompleteChatAsync(new OpenAI.Chat.ChatMessage[] { new UserChatMessage("x") }));
        Assert.Equal(404, e.Status);
        Assert.Contains("nope", e.Message);
    }

    [Fact]
    public async Task AudioClientTranscribes()
    {
        var audio = new AudioClient("speech", new ApiKeyCredential("unused"), Options);
        var expected = _f.Speech.Transcribe(Repo.Wav(2));
        AudioTranscription simple = await audio.TranscribeAudioAsync(Repo.Wav(2));
        Assert.Equal(expected.Text, simple.Text);
        await using (var s = File.OpenRead(Repo.Wav(2)))
        {
            AudioTranscription t = await audio.TranscribeAudioAsync(s, "clip.wav", new AudioTranscriptionOptions { ResponseFormat = AudioTranscriptionFormat.Verbose, Language = "en" });
            Assert.Equal(expected.Text, t.Text);
            Assert.Equal(expected.AudioSeconds, t.Duration!.Value.TotalSeconds, 2);
            Assert.Single(t.Segments);
            Assert.Equal("english", t.Language);
        }
    }
}

using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Llama3.Multimodal.Speech;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;

namespace Llama3.Multimodal.Server.Tests;

public class ServerTests : IClassFixture<ServerFixture>
{
    readonly ServerFixture _f;
    public ServerTests(ServerFixture f) => _f = f;

    static List<int> ChatIds(params (string Role, string Text)[] messages) =>
        new ChatFormat(Llama3Tokenizer.Default).EncodeDialog(messages.Select(m => new Llama3.Multimodal.Text.ChatMessage(m.Role, m.Text)));

    [Fact]
    public async Task ModelsAndHealthListWhatIsServed()
    {
        var models = JsonDocument.Parse(await _f.Http.GetStringAsync("v1/models")).RootElement;
        Assert.Equal("list", models.GetProperty("object").GetString());
        var ids = models.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();
        Assert.Equal(new[] { "tiny", "vision", "speech", "video" }, ids);
        Assert.All(models.GetProperty("data").EnumerateArray(), m => Assert.Equal("model", m.GetProperty("object").GetString()));
        var health = JsonDocument.Parse(await _f.Http.GetStringAsync("health")).RootElement;
        Assert.Equal("ok", health.GetProperty("status").GetString());
        var one = JsonDocument.Parse(await _f.Http.GetStringAsync("v1/models/vision")).RootElement;
        Assert.Equal("vision", one.GetProperty("kind").GetString());
    }

    [Fact]
    public async Task TextCompletionEqualsTheGeneratorWithUsage()
    {
        var expected = new TextGenerator(_f.Text, Llama3Tokenizer.Default).Generate(ChatIds(("system", "Be brief."), ("user", "Name a colour.")),
            new GenerationOptions { MaxNewTokens = 7 });
        var (status, body, _) = await _f.PostJson("v1/chat/completions",
            """{"model":"tiny","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Name a colour."}]}],"max_tokens":7,"temperature":0}""");
        Assert.Equal(200, status);
        Assert.Equal("chat.completion", body.GetProperty("object").GetString());
        Assert.Equal("tiny", body.GetProperty("model").GetString());
        var choice = body.GetProperty("choices")[0];
        Assert.Equal(expected.Text, choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("assistant", choice.GetProperty("message").GetProperty("role").GetString());
        Assert.Equal(expected.FinishReason, choice.GetProperty("finish_reason").GetString());
        var usage = body.GetProperty("usage");
        Assert.Equal(ChatIds(("system", "Be brief."), ("user", "Name a colour.")).Count, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(expected.Tokens.Count, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32() + usage.GetProperty("completion_tokens").GetInt32(), usage.GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task SeedAndStopAreHonoured()
    {
        const string req = """{"model":"tiny","messages":[{"role":"user","content":"Count."}],"max_completion_tokens":12,"temperature":0.9,"top_p":0.9,"seed":5}""";
        var a = (await _f.PostJson("v1/chat/completions", req)).Body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
        var b = (await _f.PostJson("v1/chat/completions", req)).Body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
        Assert.Equal(a, b);
        var expected = new TextGenerator(_f.Text, Llama3Tokenizer.Default).Generate(ChatIds(("user", "Count.")),
            new GenerationOptions { MaxNewTokens = 12, Temperature = 0.9, TopP = 0.9, Seed = 5 });
        Assert.Equal(expected.Text, a);
        Assert.True(a.Length >= 4, a);
        string stop = a.Substring(2, 2);
        var cut = await _f.PostJson("v1/chat/completions", req.Replace("\"seed\":5", $"\"seed\":5,\"stop\":[{JsonSerializer.Serialize(stop)}]"));
        var choice = cut.Body.GetProperty("choices")[0];
        Assert.Equal(a[..a.IndexOf(stop, StringComparison.Ordinal)], choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task StreamingSendsChunksEndingInDone()
    {
        var expected = new TextGenerator(_f.Text, Llama3Tokenizer.Default).Generate(ChatIds(("user", "Hi")), new GenerationOptions { MaxNewTokens = 9 });
        var r = await _f.Http.PostAsync("v1/chat/completions", new StringContent(
            """{"model":"tiny","messages":[{"role":"user","content":"Hi"}],"max_tokens":9,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}""",
            Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal("text/event-stream", r.Content.Headers.ContentType!.MediaType);
        var events = (await r.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries).ToList();
        Assert.All(events, e => Assert.StartsWith("data: ", e));
        Assert.Equal("data: [DONE]", events[^1]);
        var chunks = events.SkipLast(1).Select(e => JsonDocument.Parse(e["data: ".Length..]).RootElement).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));
        Assert.Equal("assistant", chunks[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        string text = string.Concat(chunks.Where(c => c.GetProperty("choices").GetArrayLength() > 0)
            .Select(c => c.GetProperty("choices")[0].GetProperty("delta")).Where(d => d.TryGetProperty("content", out _)).Select(d => d.GetProperty("content").GetString()));
        Assert.Equal(expected.Text, text);
        var withFinish = chunks.Where(c => c.GetProperty("choices").GetArrayLength() > 0 && c.GetProperty("choices")[0].GetProperty("finish_reason").ValueKind == JsonValueKind.String).ToList();
        Assert.Single(withFinish);
        Assert.Equal(expected.Tokens.Count, chunks[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task AnImagePartGetsTheShippedModelsCaption()
    {
        string expected = _f.Vision.Caption(Repo.Image(1), options: new GenerationOptions { MaxNewTokens = 24 });
        var (status, body, _) = await _f.PostJson("v1/chat/completions", $$$"""
            {"model":"vision","temperature":0,"max_tokens":24,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"{{{ServerFixture.DataUrl(Repo.Image(1))}}}"}}]}]}
            """);
        Assert.Equal(200, status);
        Assert.Equal(expected, body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!.Trim());
        Assert.Equal("a small purple diamond at the bottom", expected);
    }

    [Fact]
    public async Task AnInputAudioPartReachesTheSpeechModel()
    {
        var samples = AudioLoader.Load(Repo.Wav(1));
        var expected = _f.Speech.Run(samples, SpeechLanguageModel.AsrPrompt("English"), new GenerationOptions { MaxNewTokens = 32 });
        string b64 = Convert.ToBase64String(File.ReadAllBytes(Repo.Wav(1)));
        var (status, body, _) = await _f.PostJson("v1/chat/completions", $$$"""
            {"model":"speech","temperature":0,"max_tokens":32,"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"{{{b64}}}","format":"wav"}}]}]}
            """);
        Assert.Equal(200, status);
        Assert.Equal(expected.Text, body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        // Usage counts the decoder's prompt positions (chat tokens and one per speech frame) and the generated tokens.
        var usage = body.GetProperty("usage");
        Assert.True(expected.PromptTokens > 10 && expected.GeneratedTokens > 0);
        Assert.Equal(expected.PromptTokens, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(expected.GeneratedTokens, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(expected.PromptTokens + expected.GeneratedTokens, usage.GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task AVideoUrlPartReachesTheVideoModelWithUsage()
    {
        string clip = ServerFixture.Clip();
        var greedy = new GenerationOptions { MaxNewTokens = 12, Temperature = 0 };
        var expected = _f.Video.Generate(clip, "What happens?", greedy);
        string url = "data:video/mp4;base64," + Convert.ToBase64String(File.ReadAllBytes(clip));
        var (status, body, _) = await _f.PostJson("v1/chat/completions", $$$"""
            {"model":"video","temperature":0,"max_tokens":12,"messages":[{"role":"user","content":[{"type":"video_url","video_url":{"url":"{{{url}}}"}},{"type":"text","text":"What happens?"}]}]}
            """);
        Assert.Equal(200, status);
        Assert.Equal(expected.Text, body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        var usage = body.GetProperty("usage");
        Assert.Equal(expected.PromptTokens, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(expected.Tokens.Count, usage.GetProperty("completion_tokens").GetInt32());
        Assert.True(expected.Tokens.Count > 0);

        // A clip ffmpeg cannot read is a 400 naming the part; the server goes on serving.
        string broken = "data:video/mp4;base64," + Convert.ToBase64String(File.ReadAllBytes(clip)[..300]);
        var (bad, error, _) = await _f.PostJson("v1/chat/completions", $$$"""
            {"model":"video","max_tokens":4,"messages":[{"role":"user","content":[{"type":"text","text":"Look:"},{"type":"video_url","video_url":{"url":"{{{broken}}}"}}]}]}
            """);
        Assert.Equal(400, bad);
        Assert.Equal("invalid_media", error.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal("messages[0].content[1].video_url", error.GetProperty("error").GetProperty("param").GetString());
        Assert.Contains("messages[0].content[1].video_url", error.GetProperty("error").GetProperty("message").GetString());
        var (again, _, _) = await _f.PostJson("v1/chat/completions", """{"model":"video","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal(200, again);
    }

    [Fact]
    public async Task TranscriptionsAnswerJsonTextAndVerboseJson()
    {
        var expected = _f.Speech.Transcribe(Repo.Wav(0));
        Assert.Equal("the triangle moves right then it turns green", expected.Text.Trim());
        async Task<HttpResponseMessage> Post(string? format, string model = "speech", byte[]? file = null)
        {
            var form = new MultipartFormDataContent();
            var content = new ByteArrayContent(file ?? File.ReadAllBytes(Repo.Wav(0)));
            content.Headers.ContentType = new MediaTypeHeaderValue("audio/wav");
            form.Add(content, "file", "a.wav");
            form.Add(new StringContent(model), "model");
            if (format is not null) form.Add(new StringContent(format), "response_format");
            return await _f.Http.PostAsync("v1/audio/transcriptions", form);
        }
        var json = JsonDocument.Parse(await (await Post(null)).Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(expected.Text, json.GetProperty("text").GetString());
        var usage = json.GetProperty("usage");
        Assert.Equal("tokens", usage.GetProperty("type").GetString());
        Assert.Equal(expected.PromptTokens, usage.GetProperty("input_tokens").GetInt32());
        Assert.Equal(expected.GeneratedTokens, usage.GetProperty("output_tokens").GetInt32());
        Assert.Equal(expected.Text + "\n", await (await Post("text")).Content.ReadAsStringAsync());
        var verbose = JsonDocument.Parse(await (await Post("verbose_json")).Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(expected.Text, verbose.GetProperty("text").GetString());
        Assert.Equal(expected.AudioSeconds, verbose.GetProperty("duration").GetDouble(), 3);
        Assert.Equal("english", verbose.GetProperty("language").GetString());
        var bad = await Post("srt");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal("response_format", JsonDocument.Parse(await bad.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal(HttpStatusCode.BadRequest, (await Post("json", "tiny")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await Post("json", "nope")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await Post("json", "speech", Encoding.ASCII.GetBytes("RIFF\x10\0\0\0WAVEjunk"))).StatusCode);
    }

    public static IEnumerable<object[]> BadRequests()
    {
        string png = ServerFixture.DataUrl(Repo.Image(0));
        string Chat(string model, string content) => $$"""{"model":"{{model}}","max_tokens":2,"messages":[{"role":"user","content":{{content}}}]}""";
        string Image(string url, string model = "vision") => Chat(model, $$$"""[{"type":"image_url","image_url":{"url":"{{{url}}}"}}]""");
        string Video(string url, string model = "video") => Chat(model, $$$"""[{"type":"video_url","video_url":{"url":"{{{url}}}"}}]""");
        yield return new object[] { "{\"model\":", 400, "invalid_json", null! };
        yield return new object[] { "[1,2]", 400, null!, "" };
        yield return new object[] { """{"model":"tiny"}""", 400, null!, "messages" };
        yield return new object[] { """{"model":3,"messages":[]}""", 400, null!, "model" };
        yield return new object[] { Chat("nope", "\"hi\""), 404, "model_not_found", "model" };
        yield return new object[] { Chat("tiny", "\"hi\"").Replace("\"max_tokens\":2", "\"max_tokens\":\"2\""), 400, null!, "max_tokens" };
        yield return new object[] { Chat("tiny", "\"hi\"").Replace("\"max_tokens\":2", "\"temperature\":5"), 400, null!, "temperature" };
        yield return new object[] { Chat("tiny", "\"hi\"").Replace("\"max_tokens\":2", "\"top_p\":0"), 400, null!, "top_p" };
        yield return new object[] { Chat("tiny", "\"hi\"").Replace("\"max_tokens\":2", "\"stop\":7"), 400, null!, "stop" };
        yield return new object[] { Chat("tiny", "\"hi\"").Replace("\"max_tokens\":2", "\"n\":2"), 400, null!, "n" };
        yield return new object[] { Chat("tiny", "\"hi\"").Replace("\"max_tokens\":2", "\"max_tokens\":2,\"max_tokens\":3"), 400, "invalid_json", null! };
        yield return new object[] { Chat("tiny", "42"), 400, null!, "messages[0].content" };
        yield return new object[] { Chat("tiny", """[{"type":"video"}]"""), 400, null!, "messages[0].content[0].type" };
        yield return new object[] { """{"model":"tiny","messages":[{"role":"wizard","content":"x"}]}""", 400, null!, "messages[0].role" };
        yield return new object[] { Image(png, "tiny"), 400, "unsupported_content", "messages" };
        yield return new object[] { Image("data:image/png;base64,@@@@"), 400, "invalid_base64", "messages[0].content[0].image_url" };
        yield return new object[] { Image("data:image/png;base64,AAECAwQFBgc="), 400, "invalid_image", "messages[0].content[0].image_url" };
        yield return new object[] { Image(png[..(png.Length / 2 / 4 * 4)]), 400, null!, null! };
        yield return new object[] { Image("https://example.com/cat.png"), 400, "invalid_image_url", "messages[0].content[0].image_url" };
        yield return new object[] { Image("/etc/passwd"), 400, "invalid_image_url", "messages[0].content[0].image_url" };
        yield return new object[] { Image("data:text/plain;base64,AAAA"), 400, "invalid_image_url", "messages[0].content[0].image_url" };
        yield return new object[] { Chat("tiny", """[{"type":"input_audio","input_audio":{"data":"UklGRg==","format":"wav"}}]"""), 400, "unsupported_content", "messages" };
        yield return new object[] { Video("data:video/mp4;base64,AAAAIGZ0eXBpc29t", "vision"), 400, "unsupported_content", "messages" };
        yield return new object[] { Video("data:video/mp4;base64,@@@@"), 400, "invalid_base64", "messages[0].content[0].video_url" };
        yield return new object[] { Video("data:video/mp4;base64,AAECAwQFBgc="), 400, "invalid_media", "messages[0].content[0].video_url" };
        yield return new object[] { Video("https://example.com/clip.mp4"), 400, "invalid_video_url", "messages[0].content[0].video_url" };
        yield return new object[] { Video("data:image/png;base64,AAAA"), 400, "invalid_video_url", "messages[0].content[0].video_url" };
        yield return new object[] { Chat("video", """[{"type":"video_url","video_url":{}}]"""), 400, null!, "messages[0].content[0].video_url" };
        yield return new object[] { Chat("speech", """[{"type":"input_audio","input_audio":{"data":"UklGRgAAAABXQVZF","format":"wav"}}]"""), 400, "invalid_audio", null! };
        yield return new object[] { Chat("tiny", "\"" + string.Concat(Enumerable.Repeat("word ", 2100)) + "\""), 400, "context_length_exceeded", "messages" };
        yield return new object[] { Chat("tiny", "\"hi\"").Replace("\"max_tokens\":2", "\"max_tokens\":5000"), 400, "context_length_exceeded", "max_tokens" };
    }

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task BadInputGetsA4xxWithOpenAIsErrorBody(string json, int status, string? code, string? param)
    {
        var (s, body, _) = await _f.PostJson("v1/chat/completions", json);
        Assert.Equal(status, s);
        var error = body.GetProperty("error");
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        Assert.Equal(s == 404 ? "invalid_request_error" : "invalid_request_error", error.GetProperty("type").GetString());
        Assert.True(error.TryGetProperty("param", out _) && error.TryGetProperty("code", out _));
        if (code is not null) Assert.Equal(code, error.GetProperty("code").GetString());
        if (param is not null) Assert.Equal(param, error.GetProperty("param").GetString());
    }

    [Fact]
    public async Task OversizedBodiesUnknownRoutesAndWrongMethodsGetErrorJson()
    {
        // With Expect: 100-continue the client waits for the answer before sending the body.
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = new StringContent("{\"model\":\"tiny\",\"x\":\"" + new string('a', 5 << 20) + "\"}", Encoding.UTF8, "application/json"),
        };
        request.Headers.ExpectContinue = true;
        var big = await _f.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, big.StatusCode);
        Assert.Equal("request_too_large", JsonDocument.Parse(await big.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
        var missing = await _f.Http.GetAsync("v1/nothing");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.True(JsonDocument.Parse(await missing.Content.ReadAsStringAsync()).RootElement.TryGetProperty("error", out _));
        var method = await _f.Http.GetAsync("v1/chat/completions");
        Assert.Equal(HttpStatusCode.MethodNotAllowed, method.StatusCode);
        Assert.True(JsonDocument.Parse(await method.Content.ReadAsStringAsync()).RootElement.TryGetProperty("error", out _));
    }
}

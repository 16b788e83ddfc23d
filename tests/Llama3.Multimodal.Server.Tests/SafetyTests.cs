using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Llama3.Multimodal.Speech;
using Llama3.Multimodal.Tests.Shared;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Video;
using Llama3.Multimodal.Vision;

namespace Llama3.Multimodal.Server.Tests;

/// <summary>Queue bounds, disconnects, the API key and a seeded fuzz run, each on a server of its own.</summary>
public class SafetyTests
{
    static async Task<JsonElement> Health(HttpClient http) => JsonDocument.Parse(await http.GetStringAsync("health")).RootElement.GetProperty("models")[0];

    static StringContent Body(string json) => new(json, Encoding.UTF8, "application/json");

    [Fact]
    public async Task AFullQueueAnswers429AndADisconnectStopsDecoding()
    {
        using var tiny = ContinuousBatcherTests.NewTiny();
        await using var server = await OpenAIServer.StartAsync(new[] { ServedModel.FromText("tiny", tiny, maxBatch: 1) },
            new OpenAIServerOptions { Port = 0, MaxBatch = 1, MaxQueue = 0 }, ownsModels: true);
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        using var cts = new CancellationTokenSource();
        var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = Body("""{"model":"tiny","messages":[{"role":"user","content":"Go on and on."}],"max_tokens":2000,"temperature":0,"stream":true}"""),
        };
        var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        var stream = await response.Content.ReadAsStreamAsync(cts.Token);
        var reader = new StreamReader(stream);
        for (int i = 0; i < 3; i++) Assert.StartsWith("data: ", await reader.ReadLineAsync(cts.Token) is { Length: > 0 } l ? l : await reader.ReadLineAsync(cts.Token));

        // The one slot is taken: the next request is refused with Retry-After.
        var busy = await http.PostAsync("v1/chat/completions", Body("""{"model":"tiny","messages":[{"role":"user","content":"x"}],"max_tokens":1}"""));
        Assert.Equal(HttpStatusCode.TooManyRequests, busy.StatusCode);
        Assert.True(busy.Headers.RetryAfter is not null);
        var error = JsonDocument.Parse(await busy.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("queue_full", error.GetProperty("code").GetString());

        // The client goes away: its generation leaves the batch and decoding stops.
        cts.Cancel();
        response.Dispose();
        JsonElement h = await Health(http);
        for (int i = 0; i < 200 && h.GetProperty("pending").GetInt32() > 0; i++)
        {
            await Task.Delay(50);
            h = await Health(http);
        }
        Assert.Equal(0, h.GetProperty("pending").GetInt32());
        long steps = h.GetProperty("decode_steps").GetInt64();
        Assert.True(steps < 1999, $"{steps} steps: the generation ran to its end");
        await Task.Delay(300);
        Assert.Equal(steps, (await Health(http)).GetProperty("decode_steps").GetInt64());
        var ok = await http.PostAsync("v1/chat/completions", Body("""{"model":"tiny","messages":[{"role":"user","content":"x"}],"max_tokens":1}"""));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    [Fact]
    public async Task AnApiKeyIsCheckedAndNeededOffLoopback()
    {
        using var tiny = ContinuousBatcherTests.NewTiny();
        var e = Assert.Throws<ArgumentException>(() => new OpenAIServerOptions { Host = "0.0.0.0" }.Validate());
        Assert.Contains("--api-key", e.Message);
        new OpenAIServerOptions { Host = "0.0.0.0", ApiKey = "k" }.Validate();
        Assert.Throws<ArgumentException>(() => new OpenAIServerOptions { Host = "example.org" }.Validate());

        await using var server = await OpenAIServer.StartAsync(new[] { ServedModel.FromText("tiny", tiny) },
            new OpenAIServerOptions { Port = 0, ApiKey = "sekret" }, ownsModels: true);
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        var none = await http.GetAsync("v1/models");
        Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        Assert.Equal("invalid_api_key", JsonDocument.Parse(await none.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "wrong");
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("v1/models")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.PostAsync("v1/chat/completions", Body("{}"))).StatusCode);
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "sekret");
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("v1/models")).StatusCode);
        http.DefaultRequestHeaders.Authorization = null;
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("health")).StatusCode);
    }

    static byte[] Wav(double seconds)
    {
        int n = (int)(16000 * seconds);
        using var ms = new MemoryStream();
        using var w = new BinaryWriter(ms);
        w.Write("RIFF"u8); w.Write(36 + n * 2); w.Write("WAVE"u8);
        w.Write("fmt "u8); w.Write(16); w.Write((short)1); w.Write((short)1); w.Write(16000); w.Write(32000); w.Write((short)2); w.Write((short)16);
        w.Write("data"u8); w.Write(n * 2);
        for (int i = 0; i < n; i++) w.Write((short)(8000 * Math.Sin(2 * Math.PI * 440 * i / 16000.0)));
        w.Flush();
        return ms.ToArray();
    }

    [Fact]
    public async Task AClientThatAbortsATranscriptionOrAnAudioChatStopsItsWorkAndFreesItsSlot()
    {
        using var speech = SpeechLanguageModel.Create("tiny-speech", seed: 6);
        byte[] wav = Wav(1.0);
        var samples = AudioLoader.Load(wav, "sine.wav");
        // Uncancelled, this random model writes its whole budget: 128 tokens (the transcription default) and 300.
        Assert.Equal(128, speech.Run(samples, SpeechLanguageModel.AsrPrompt("English")).GeneratedTokens);
        var served = ServedModel.FromSpeech("speech", speech, maxBatch: 1);
        await using var server = await OpenAIServer.StartAsync(new[] { served }, new OpenAIServerOptions { Port = 0, MaxBatch = 1, MaxQueue = 0 });
        using var http = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromSeconds(120) };
        // The client goes away at the model's first token; each token is slowed down so that the server sees the abort
        // long before the budget is spent.
        CancellationTokenSource? client = null;
        void OnToken(int _) { client?.Cancel(); Thread.Sleep(10); }
        served.Chat.TokenGenerated += OnToken;
        served.Transcriber!.TokenGenerated += OnToken;

        HttpContent Form()
        {
            var form = new MultipartFormDataContent();
            var file = new ByteArrayContent(wav);
            file.Headers.ContentType = new MediaTypeHeaderValue("audio/wav");
            form.Add(file, "file", "sine.wav");
            form.Add(new StringContent("speech"), "model");
            return form;
        }
        async Task<JsonElement> Settled(long cancelled)
        {
            JsonElement h = await Health(http);
            for (int i = 0; i < 400 && (h.GetProperty("pending").GetInt32() > 0 || h.GetProperty("cancelled").GetInt64() < cancelled); i++)
            {
                await Task.Delay(50);
                h = await Health(http);
            }
            Assert.Equal(0, h.GetProperty("pending").GetInt32());
            Assert.Equal(cancelled, h.GetProperty("cancelled").GetInt64());
            return h;
        }

        client = new CancellationTokenSource();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => http.PostAsync("v1/audio/transcriptions", Form(), client.Token));
        long aborted = (await Settled(1)).GetProperty("media_tokens").GetInt64();
        Assert.InRange(aborted, 1, 127);
        await Task.Delay(200);
        Assert.Equal(aborted, (await Health(http)).GetProperty("media_tokens").GetInt64());

        // The slot is free (the queue holds one request): the next transcription runs to its end.
        client = null;
        var ok = await http.PostAsync("v1/audio/transcriptions", Form());
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        var usage = JsonDocument.Parse(await ok.Content.ReadAsStringAsync()).RootElement.GetProperty("usage");
        Assert.Equal(128, usage.GetProperty("output_tokens").GetInt32());
        long afterOk = (await Settled(1)).GetProperty("media_tokens").GetInt64();
        Assert.Equal(aborted + 128, afterOk);

        // The same for a chat completion with audio.
        string chat = $$$"""{"model":"speech","max_tokens":300,"temperature":0,"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"{{{Convert.ToBase64String(wav)}}}","format":"wav"}}]}]}""";
        client = new CancellationTokenSource();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => http.PostAsync("v1/chat/completions", Body(chat), client.Token));
        long chatTokens = (await Settled(2)).GetProperty("media_tokens").GetInt64() - afterOk;
        Assert.InRange(chatTokens, 1, 299);
        client = null;
        var done = await http.PostAsync("v1/chat/completions", Body(chat));
        Assert.Equal(HttpStatusCode.OK, done.StatusCode);
        Assert.Equal(300, JsonDocument.Parse(await done.Content.ReadAsStringAsync()).RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(2, served.Cancelled);
    }

    [Fact]
    public async Task ThousandsOfMutatedRequestsGetNo5xxAndTheServerLivesOn()
    {
        using var tiny = ContinuousBatcherTests.NewTiny();
        using var vision = VisionLanguageModel.FromPretrained(Repo.Demo("vision"));
        using var speech = SpeechLanguageModel.FromPretrained(Repo.Demo("speech"));
        using var video = VideoLanguageModel.FromPretrained(Repo.Demo("video"));
        var models = new[]
        {
            ServedModel.FromText("tiny", tiny, maxBatch: 4, context: 40),
            ServedModel.FromVision("vision", vision, maxBatch: 4, context: 48),
            ServedModel.FromSpeech("speech", speech, maxBatch: 4, context: 64),
            ServedModel.FromVideo("video", video, maxBatch: 4),
        };
        await using var server = await OpenAIServer.StartAsync(models, new OpenAIServerOptions { Port = 0, MaxBatch = 4, MaxQueue = 1000, MaxBodyBytes = 1 << 16 }, ownsModels: true);
        using var http = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        string png = Convert.ToBase64String(File.ReadAllBytes(Repo.Image(0)));
        string wav = Convert.ToBase64String(Wav(0.25));
        string mp4 = Convert.ToBase64String(File.ReadAllBytes(Repo.Mp4(0)));
        var seeds = new (string Path, string ContentType, byte[] Body)[]
        {
            ("v1/chat/completions", "application/json", Encoding.UTF8.GetBytes("""{"model":"tiny","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hi"}]}],"max_tokens":2,"temperature":0,"top_p":0.9,"seed":3,"stop":["\n"]}""")),
            ("v1/chat/completions", "application/json", Encoding.UTF8.GetBytes("""{"model":"tiny","messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":3,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}""")),
            ("v1/chat/completions", "application/json", Encoding.UTF8.GetBytes($$$"""{"model":"vision","max_tokens":2,"temperature":0,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,{{{png}}}"}},{"type":"text","text":"a"}]}]}""")),
            ("v1/chat/completions", "application/json", Encoding.UTF8.GetBytes($$$"""{"model":"speech","max_tokens":2,"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"{{{wav}}}","format":"wav"}}]}]}""")),
            ("v1/chat/completions", "application/json", Encoding.UTF8.GetBytes($$$"""{"model":"video","max_tokens":2,"temperature":0,"messages":[{"role":"user","content":[{"type":"video_url","video_url":{"url":"data:video/mp4;base64,{{{mp4}}}"}},{"type":"text","text":"What happens?"}]}]}""")),
            ("v1/audio/transcriptions", "multipart/form-data; boundary=XyZ", Encoding.UTF8.GetBytes(
                "--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nspeech\r\n--XyZ\r\nContent-Disposition: form-data; name=\"response_format\"\r\n\r\nverbose_json\r\n" +
                "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n").Concat(Wav(0.1)).Concat(Encoding.UTF8.GetBytes("\r\n--XyZ--\r\n")).ToArray()),
        };
        var rng = new Random(1234);
        // Mostly text, fewer of the slower media requests: 6 text, 4 streamed, 4 image, 3 audio chat, 1 video chat and
        // 2 transcriptions in 20.
        int[] mix = { 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 5, 5 };
        var work = Enumerable.Range(0, 2000).Select(i =>
        {
            var s = seeds[mix[i % mix.Length]];
            var body = rng.Next(10) == 0 ? s.Body : Fuzz.Mutate(s.Body, rng);
            if (rng.Next(20) == 0) body = Fuzz.Mutate(body, rng);
            return (i, s.Path, s.ContentType, Body: body);
        }).ToList();
        var statuses = new int[work.Count];
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        await Parallel.ForEachAsync(work, new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (w, ct) =>
        {
            var content = new ByteArrayContent(w.Body);
            content.Headers.TryAddWithoutValidation("Content-Type", w.ContentType);
            using var r = await http.PostAsync(w.Path, content, ct);
            string text = await r.Content.ReadAsStringAsync(ct);
            statuses[w.i] = (int)r.StatusCode;
            if ((int)r.StatusCode >= 500) failures.Add($"request {w.i} → {(int)r.StatusCode}: {text}");
            else if ((int)r.StatusCode >= 400)
            {
                try
                {
                    var err = JsonDocument.Parse(text).RootElement.GetProperty("error");
                    if (err.GetProperty("message").GetString() is not { Length: > 0 } || !err.TryGetProperty("type", out _) || !err.TryGetProperty("param", out _) || !err.TryGetProperty("code", out _))
                        failures.Add($"request {w.i} → {(int)r.StatusCode} with an incomplete error: {text}");
                }
                catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
                {
                    failures.Add($"request {w.i} → {(int)r.StatusCode} without error JSON: {text}");
                }
            }
        });
        Assert.True(failures.IsEmpty, string.Join("\n", failures.Take(5)));
        // Both outcomes happened: requests of every seed reached their model, and most mutations were refused.
        for (int k = 0; k < seeds.Length; k++)
            Assert.True(Enumerable.Range(0, work.Count).Any(i => mix[i % mix.Length] == k && statuses[i] == 200), $"no request made from seed {k} ({seeds[k].Path}) succeeded");
        Assert.True(statuses.Count(s => s == 400) > statuses.Length / 4, string.Join(",", statuses.GroupBy(s => s).Select(g => $"{g.Key}:{g.Count()}")));
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("health")).StatusCode);
        var expected = new TextGenerator(tiny, Llama3Tokenizer.Default)
            .Generate(new ChatFormat(Llama3Tokenizer.Default).EncodeDialog(new[] { new Llama3.Multimodal.Text.ChatMessage("user", "Hi") }), new GenerationOptions { MaxNewTokens = 4 });
        var ok = await http.PostAsync("v1/chat/completions", Body("""{"model":"tiny","messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"temperature":0}"""));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal(expected.Text, JsonDocument.Parse(await ok.Content.ReadAsStringAsync()).RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        Assert.All(server.Models, m => Assert.Equal(0, m.Pending));
    }
}

using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Llama3.Multimodal.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Llama3.Multimodal.Server;

/// <summary>
/// An OpenAI-compatible HTTP server on Kestrel: <c>GET /v1/models</c>, <c>POST /v1/chat/completions</c> (text, image,
/// audio and video parts, sampling options, usage, server-sent-event streaming), <c>POST /v1/audio/transcriptions</c> and
/// <c>GET /health</c>. Text requests to one model share decode steps (<see cref="ContinuousBatcher"/>); each model holds
/// at most <see cref="OpenAIServerOptions.MaxBatch"/> + <see cref="OpenAIServerOptions.MaxQueue"/> requests and answers
/// 429 with <c>Retry-After</c> beyond that; a client that disconnects stops its generation before the next decode step
/// (a request with audio or video also between the speech encoder's layers), and its slot is free again.
/// Every refused request gets a 4xx with OpenAI's error body.
/// </summary>
public sealed class OpenAIServer : IAsyncDisposable
{
    readonly WebApplication _app;
    readonly IReadOnlyList<ServedModel> _models;
    readonly bool _ownsModels;

    /// <summary>The settings in force.</summary>
    public OpenAIServerOptions Options { get; }
    /// <summary>The served models.</summary>
    public IReadOnlyList<ServedModel> Models => _models;
    /// <summary>Where the server listens, e.g. <c>http://127.0.0.1:8080/</c> (the actual port when 0 was asked).</summary>
    public Uri BaseAddress { get; }

    OpenAIServer(WebApplication app, IReadOnlyList<ServedModel> models, bool ownsModels, OpenAIServerOptions options, Uri address)
    {
        _app = app;
        _models = models;
        _ownsModels = ownsModels;
        Options = options;
        BaseAddress = address;
    }

    /// <summary>
    /// Starts serving <paramref name="models"/> (ids must be unique). With <paramref name="ownsModels"/> they are
    /// disposed with the server. Throws <see cref="ArgumentException"/> for bad options (e.g. a non-loopback host
    /// without an API key).
    /// </summary>
    public static async Task<OpenAIServer> StartAsync(IReadOnlyList<ServedModel> models, OpenAIServerOptions? options = null, bool ownsModels = false,
        CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(models);
        options = (options ?? new OpenAIServerOptions()).Validate();
        if (models.Count == 0) throw new ArgumentException("no model to serve.");
        var dup = models.GroupBy(m => m.Id).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new ArgumentException($"two models have the id '{dup.Key}'; give each folder a different name.");
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        var address = OpenAIServerOptions.ParseHost(options.Host);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = options.MaxBodyBytes;
            k.Listen(address, options.Port);
        });
        var app = builder.Build();
        Configure(app, models, options);
        await app.StartAsync(cancel).ConfigureAwait(false);
        string bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var uri = new Uri(bound.Replace("0.0.0.0", "127.0.0.1").Replace("[::]", "[::1]") + "/");
        return new OpenAIServer(app, models, ownsModels, options, uri);
    }

    /// <summary>Completes when the server stops (<paramref name="cancel"/> or the host's shutdown).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancel = default) => _app.WaitForShutdownAsync(cancel);

    /// <summary>Stops listening (requests in flight are cancelled) and disposes owned models.</summary>
    public async ValueTask DisposeAsync()
    {
        using (var t = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
            await _app.StopAsync(t.Token).ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        if (_ownsModels) foreach (var m in _models) m.Dispose();
    }

    /// <summary>
    /// Adds the error handling, the API-key check and the endpoints to an application of your own (what
    /// <see cref="StartAsync"/> does on its own Kestrel). Set Kestrel's <c>MaxRequestBodySize</c> to
    /// <see cref="OpenAIServerOptions.MaxBodyBytes"/> there too.
    /// </summary>
    public static void Configure(IApplicationBuilder app, IReadOnlyList<ServedModel> models, OpenAIServerOptions options)
    {
        options.Validate();
        var byId = models.ToDictionary(m => m.Id, StringComparer.Ordinal);
        app.Use((ctx, next) => Guard(ctx, next, options));
        app.UseRouting();
        app.UseEndpoints(e => Map(e, byId, options));
    }

    static void Map(IEndpointRouteBuilder e, Dictionary<string, ServedModel> models, OpenAIServerOptions options)
    {
        e.MapGet("/health", (HttpContext ctx) => Json(ctx, 200, new JsonObject
        {
            ["status"] = "ok",
            ["models"] = new JsonArray(models.Values.Select(m => (JsonNode)new JsonObject
            {
                ["id"] = m.Id,
                ["kind"] = m.Kind.ToString().ToLowerInvariant(),
                ["pending"] = m.Pending,
                ["in_batcher"] = m.Batcher.Pending,
                ["decode_steps"] = m.Batcher.Steps,
                ["decoded_rows"] = m.Batcher.RowSteps,
                ["media_tokens"] = m.MediaTokens,
                ["cancelled"] = m.Cancelled,
            }).ToArray()),
        }));
        e.MapGet("/v1/models", (HttpContext ctx) => Json(ctx, 200, new JsonObject
        {
            ["object"] = "list",
            ["data"] = new JsonArray(models.Values.Select(m => (JsonNode)ModelJson(m)).ToArray()),
        }));
        e.MapGet("/v1/models/{id}", (HttpContext ctx, string id) => Json(ctx, 200, ModelJson(Find(models, id, null))));
        e.MapPost("/v1/chat/completions", (HttpContext ctx) => ChatAsync(ctx, models, options));
        e.MapPost("/v1/audio/transcriptions", (HttpContext ctx) => TranscribeAsync(ctx, models, options));
    }

    static JsonObject ModelJson(ServedModel m) => new()
    {
        ["id"] = m.Id,
        ["object"] = "model",
        ["created"] = m.Created,
        ["owned_by"] = "llama3-multimodal",
        ["kind"] = m.Kind.ToString().ToLowerInvariant(),
        ["max_model_len"] = m.ContextTokens,
    };

    static ServedModel Find(Dictionary<string, ServedModel> models, string id, string? param) =>
        models.TryGetValue(id, out var m) ? m
            : throw new ApiException(404, $"The model '{id}' does not exist. Served: {string.Join(", ", models.Keys)}.", param, "model_not_found");

    // ----- middleware -----

    static async Task Guard(HttpContext ctx, RequestDelegate next, OpenAIServerOptions options)
    {
        try
        {
            if (options.ApiKey is not null && ctx.Request.Path.StartsWithSegments("/v1") && !Authorized(ctx.Request, options.ApiKey))
                throw new ApiException(401, "Incorrect or missing API key: send 'Authorization: Bearer <key>'.", null, "invalid_api_key");
            await next(ctx).ConfigureAwait(false);
            if (!ctx.Response.HasStarted && ctx.Response.StatusCode >= 400 && ctx.Response.ContentLength is null && ctx.Response.ContentType is null)
            {
                int status = ctx.Response.StatusCode;
                string message = status switch
                {
                    404 => $"Unknown endpoint {ctx.Request.Method} {ctx.Request.Path}.",
                    405 => $"Method {ctx.Request.Method} is not allowed on {ctx.Request.Path}.",
                    _ => $"The request failed with status {status}.",
                };
                await WriteError(ctx, new ApiException(status, message, null, status == 404 ? "unknown_url" : null)).ConfigureAwait(false);
            }
        }
        catch (Exception) when (ctx.RequestAborted.IsCancellationRequested)
        {
            // The client is gone; nothing to answer.
        }
        catch (Exception e)
        {
            var api = Classify(e);
            if (api.Status >= 500) Console.Error.WriteLine($"error: {ctx.Request.Method} {ctx.Request.Path}: {e}");
            if (!ctx.Response.HasStarted)
            {
                ctx.Response.Clear();
                await WriteError(ctx, api).ConfigureAwait(false);
            }
            else if (ctx.Response.ContentType?.StartsWith("text/event-stream", StringComparison.Ordinal) == true)
            {
                try { await WriteEvent(ctx, api.ToJson().ToJsonString(), CancellationToken.None).ConfigureAwait(false); }
                catch (Exception) when (ctx.RequestAborted.IsCancellationRequested) { }
            }
        }
    }

    static bool Authorized(HttpRequest request, string key)
    {
        string header = request.Headers.Authorization.ToString();
        const string prefix = "Bearer ";
        if (!header.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)) return false;
        var given = Encoding.UTF8.GetBytes(header[prefix.Length..].Trim());
        var expected = Encoding.UTF8.GetBytes(key);
        return CryptographicOperations.FixedTimeEquals(SHA256.HashData(given), SHA256.HashData(expected));
    }

    /// <summary>Maps an exception to the error the client gets: its own mistakes are 4xx, anything else 500.</summary>
    internal static ApiException Classify(Exception e) => e switch
    {
        ApiException a => a,
        BadHttpRequestException b when b.StatusCode == 413 => new ApiException(413, "The request body is too large.", null, "request_too_large"),
        BadHttpRequestException b => new ApiException(b.StatusCode is >= 400 and < 500 ? b.StatusCode : 400, b.Message, null, "bad_request"),
        MediaDecodeException m => ApiException.BadRequest(m.Message,
            m.MediaPath is { } part && part.StartsWith("messages[", StringComparison.Ordinal) ? part : "messages", "invalid_media"),
        TokenizerFormatException t => ApiException.BadRequest(t.Message, null, "invalid_request"),
        NotSupportedException n => ApiException.BadRequest(n.Message, "messages", "unsupported_content"),
        ArgumentException or FormatException or InvalidDataException or JsonException or OverflowException => ApiException.BadRequest(e.Message, null, "invalid_request"),
        _ => new ApiException(500, "The server failed to handle the request.", null, "internal_error", "server_error"),
    };

    static Task WriteError(HttpContext ctx, ApiException e)
    {
        if (e.Status == 429) ctx.Response.Headers.RetryAfter = "1";
        return Json(ctx, e.Status, e.ToJson());
    }

    static Task Json(HttpContext ctx, int status, JsonNode body)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        var bytes = Encoding.UTF8.GetBytes(body.ToJsonString());
        ctx.Response.ContentLength = bytes.Length;
        return ctx.Response.Body.WriteAsync(bytes, ctx.RequestAborted).AsTask();
    }

    static async Task WriteEvent(HttpContext ctx, string data, CancellationToken cancel)
    {
        var bytes = Encoding.UTF8.GetBytes("data: " + data + "\n\n");
        await ctx.Response.Body.WriteAsync(bytes, cancel).ConfigureAwait(false);
        await ctx.Response.Body.FlushAsync(cancel).ConfigureAwait(false);
    }

    static async Task<byte[]> ReadBody(HttpContext ctx, long max)
    {
        if (ctx.Request.ContentLength > max) throw new ApiException(413, $"The request body of {ctx.Request.ContentLength} bytes exceeds the {max}-byte limit.", null, "request_too_large");
        using var ms = new MemoryStream();
        var buffer = new byte[81920];
        int n;
        while ((n = await ctx.Request.Body.ReadAsync(buffer, ctx.RequestAborted).ConfigureAwait(false)) > 0)
        {
            if (ms.Length + n > max) throw new ApiException(413, $"The request body exceeds the {max}-byte limit.", null, "request_too_large");
            ms.Write(buffer, 0, n);
        }
        return ms.ToArray();
    }

    static void Enter(ServedModel m, OpenAIServerOptions options)
    {
        if (!m.TryEnter(options.MaxBatch + options.MaxQueue))
            throw new ApiException(429, $"The model '{m.Id}' has {options.MaxBatch + options.MaxQueue} requests pending; retry later.", null, "queue_full", "rate_limit_exceeded");
    }

    // ----- chat -----

    static async Task ChatAsync(HttpContext ctx, Dictionary<string, ServedModel> models, OpenAIServerOptions options)
    {
        var body = await ReadBody(ctx, options.MaxBodyBytes).ConfigureAwait(false);
        var req = ChatRequest.Parse(body, options);
        var model = Find(models, req.Model, "model");
        if (req.HasImages && !model.AcceptsImages)
            throw ApiException.BadRequest($"The model '{model.Id}' ({model.Kind.ToString().ToLowerInvariant()}) does not accept images.", "messages", "unsupported_content");
        if (req.HasAudio && !model.AcceptsAudio)
            throw ApiException.BadRequest($"The model '{model.Id}' ({model.Kind.ToString().ToLowerInvariant()}) does not accept audio.", "messages", "unsupported_content");
        if (req.HasVideo && !model.AcceptsVideo)
            throw ApiException.BadRequest($"The model '{model.Id}' ({model.Kind.ToString().ToLowerInvariant()}) does not accept video.", "messages", "unsupported_content");
        if ((req.HasAudio ? 1 : 0) + (req.HasImages ? 1 : 0) + (req.HasVideo ? 1 : 0) > 1)
            throw ApiException.BadRequest("One request may carry images, audio or a video, not two of these.", "messages", "unsupported_content");
        Enter(model, options);
        try
        {
            var run = new Completion(ctx, model, req);
            if (req.HasImages || req.HasAudio || req.HasVideo) await run.MediaAsync().ConfigureAwait(false);
            else await run.TextAsync().ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            model.NoteCancelled();
            throw;
        }
        finally { model.Leave(); }
    }

    /// <summary>One chat completion: runs the model and writes the response or the event stream.</summary>
    sealed class Completion
    {
        readonly HttpContext _ctx;
        readonly ServedModel _model;
        readonly ChatRequest _req;
        readonly string _id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        readonly Channel<string> _pieces = Channel.CreateUnbounded<string>(new UnboundedChannelOptions { SingleReader = true });

        public Completion(HttpContext ctx, ServedModel model, ChatRequest req) { _ctx = ctx; _model = model; _req = req; }

        double Temperature => _req.Temperature ?? _model.Defaults.Temperature ?? 1.0;
        double TopP => _req.TopP ?? _model.Defaults.TopP ?? 1.0;
        int TopK => Math.Max(0, _req.TopK ?? _model.Defaults.TopK ?? 0);
        long Seed => _req.Seed ?? Random.Shared.NextInt64(0, long.MaxValue);

        public async Task TextAsync()
        {
            IReadOnlyList<int> ids = _model.Chat.EncodePrompt(_req.Messages);
            int context = _model.ContextTokens;
            if (ids.Count >= context)
                throw ApiException.BadRequest($"This model's maximum context length is {context} tokens. However, your messages resulted in {ids.Count} tokens.", "messages", "context_length_exceeded");
            int max = _req.MaxTokens ?? context - ids.Count;
            if (ids.Count + max > context)
                throw ApiException.BadRequest($"This model's maximum context length is {context} tokens. However, you requested {ids.Count + max} tokens ({ids.Count} in the messages, {max} in the completion).",
                    _req.MaxTokens is null ? "messages" : "max_tokens", "context_length_exceeded");
            var gopts = new GenerationOptions { MaxNewTokens = max, Temperature = Temperature, TopP = TopP, TopK = TopK, Seed = Seed };
            var dec = _model.Tokenizer.NewStreamingDecoder();
            var filter = new StopSequenceFilter(_req.Stop);
            int produced = 0;
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(_ctx.RequestAborted);
            void OnToken(int id)
            {
                produced++;
                string emit = filter.Push(dec.Push(id));
                if (emit.Length > 0) _pieces.Writer.TryWrite(emit);
                // A stop sequence ends the request before the next decode step.
                if (filter.Stopped) cts.Cancel();
            }
            var gen = _model.Batcher.GenerateAsync(ids, gopts, OnToken, cts.Token);
            _ = gen.ContinueWith(_ => _pieces.Writer.TryComplete(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            string finish;
            try
            {
                if (_req.Stream) await StreamPiecesAsync().ConfigureAwait(false);
                try { finish = (await gen.ConfigureAwait(false)).FinishReason; }
                catch (OperationCanceledException) when (filter.Stopped && !_ctx.RequestAborted.IsCancellationRequested) { finish = "stop"; }
            }
            finally
            {
                // Leave only once the batcher has let the request go, so that the queue bound counts what it decodes.
                if (!gen.IsCompleted)
                {
                    cts.Cancel();
                    try { await gen.ConfigureAwait(false); }
                    catch (Exception) { }
                }
            }
            string tail = filter.Stopped ? "" : filter.Push(dec.Flush()) + filter.Flush();
            if (filter.Stopped) finish = "stop";
            await FinishAsync(filter.Text, tail, finish, ids.Count, produced).ConfigureAwait(false);
        }

        public async Task MediaAsync()
        {
            var chatOptions = new ChatOptions
            {
                MaxOutputTokens = _req.MaxTokens ?? Math.Min(256, _model.ContextTokens - 1),
                Temperature = (float)Temperature,
                TopP = (float)TopP,
                TopK = TopK,
                Seed = Seed,
                StopSequences = _req.Stop.ToList(),
            };
            var abort = _ctx.RequestAborted;
            var streaming = _req.Stream ? StreamPiecesAsync() : Task.CompletedTask;
            ChatResponse response;
            try
            {
                response = await _model.Batcher.RunExclusiveAsync(() =>
                {
                    if (!_req.Stream) return _model.Chat.GetResponseAsync(_req.Messages, chatOptions, abort).GetAwaiter().GetResult();
                    var updates = new List<ChatResponseUpdate>();
                    var e = _model.Chat.GetStreamingResponseAsync(_req.Messages, chatOptions, abort).GetAsyncEnumerator(abort);
                    try
                    {
                        while (e.MoveNextAsync().AsTask().GetAwaiter().GetResult())
                        {
                            updates.Add(e.Current);
                            if (e.Current.Text is { Length: > 0 } t) _pieces.Writer.TryWrite(t);
                        }
                    }
                    finally { e.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
                    return updates.ToChatResponse();
                }, abort).ConfigureAwait(false);
            }
            finally { _pieces.Writer.TryComplete(); }
            await streaming.ConfigureAwait(false);
            string finish = response.FinishReason == ChatFinishReason.Length ? "length" : "stop";
            var usage = response.Usage;
            await FinishAsync(response.Text, "", finish, (int)(usage?.InputTokenCount ?? 0), (int)(usage?.OutputTokenCount ?? 0)).ConfigureAwait(false);
        }

        JsonObject Chunk(JsonObject delta, string? finish) => new()
        {
            ["id"] = _id,
            ["object"] = "chat.completion.chunk",
            ["created"] = _created,
            ["model"] = _model.Id,
            ["system_fingerprint"] = null,
            ["choices"] = new JsonArray(new JsonObject
            {
                ["index"] = 0,
                ["delta"] = delta,
                ["logprobs"] = null,
                ["finish_reason"] = finish,
            }),
        };

        async Task StreamPiecesAsync()
        {
            _ctx.Response.StatusCode = 200;
            _ctx.Response.ContentType = "text/event-stream";
            _ctx.Response.Headers.CacheControl = "no-cache";
            _ctx.Response.Headers["X-Accel-Buffering"] = "no";
            var abort = _ctx.RequestAborted;
            await WriteEvent(_ctx, Chunk(new JsonObject { ["role"] = "assistant", ["content"] = "" }, null).ToJsonString(), abort).ConfigureAwait(false);
            await foreach (var piece in _pieces.Reader.ReadAllAsync(abort).ConfigureAwait(false))
                await WriteEvent(_ctx, Chunk(new JsonObject { ["content"] = piece }, null).ToJsonString(), abort).ConfigureAwait(false);
        }

        JsonObject Usage(int prompt, int completion) => new()
        {
            ["prompt_tokens"] = prompt,
            ["completion_tokens"] = completion,
            ["total_tokens"] = prompt + completion,
        };

        async Task FinishAsync(string text, string tail, string finish, int promptTokens, int completionTokens)
        {
            var abort = _ctx.RequestAborted;
            if (_req.Stream)
            {
                if (tail.Length > 0) await WriteEvent(_ctx, Chunk(new JsonObject { ["content"] = tail }, null).ToJsonString(), abort).ConfigureAwait(false);
                await WriteEvent(_ctx, Chunk(new JsonObject(), finish).ToJsonString(), abort).ConfigureAwait(false);
                if (_req.IncludeUsage)
                {
                    var u = Chunk(new JsonObject(), null);
                    u["choices"] = new JsonArray();
                    u["usage"] = Usage(promptTokens, completionTokens);
                    await WriteEvent(_ctx, u.ToJsonString(), abort).ConfigureAwait(false);
                }
                await WriteEvent(_ctx, "[DONE]", abort).ConfigureAwait(false);
                return;
            }
            await Json(_ctx, 200, new JsonObject
            {
                ["id"] = _id,
                ["object"] = "chat.completion",
                ["created"] = _created,
                ["model"] = _model.Id,
                ["system_fingerprint"] = null,
                ["choices"] = new JsonArray(new JsonObject
                {
                    ["index"] = 0,
                    ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = text + tail, ["refusal"] = null },
                    ["logprobs"] = null,
                    ["finish_reason"] = finish,
                }),
                ["usage"] = Usage(promptTokens, completionTokens),
            }).ConfigureAwait(false);
        }
    }

    // ----- transcription -----

    static async Task TranscribeAsync(HttpContext ctx, Dictionary<string, ServedModel> models, OpenAIServerOptions options)
    {
        if (!ctx.Request.HasFormContentType)
            throw ApiException.BadRequest("Send multipart/form-data with 'file' and 'model'.", "file", "invalid_content_type");
        ctx.Features.Set<IFormFeature>(new FormFeature(ctx.Request, new FormOptions
        {
            MultipartBodyLengthLimit = options.MaxBodyBytes,
            ValueCountLimit = 64,
            ValueLengthLimit = 1 << 16,
            MultipartHeadersLengthLimit = 1 << 14,
        }));
        IFormCollection form;
        try { form = await ctx.Request.ReadFormAsync(ctx.RequestAborted).ConfigureAwait(false); }
        catch (Exception e) when (e is InvalidDataException || e is IOException && !ctx.RequestAborted.IsCancellationRequested)
        {
            throw ApiException.BadRequest($"The multipart body is malformed: {e.Message}", "file", "invalid_multipart");
        }
        string Field(string name) => form.TryGetValue(name, out var v) ? v.ToString() : "";
        string modelId = Field("model");
        if (modelId.Length == 0) throw ApiException.BadRequest("'model' is required.", "model");
        var file = form.Files.GetFile("file") ?? throw ApiException.BadRequest("'file' (the audio) is required.", "file");
        string format = Field("response_format") is { Length: > 0 } f ? f : "json";
        if (format is not ("json" or "text" or "verbose_json"))
            throw ApiException.BadRequest($"response_format '{format}' is not supported (json, text, verbose_json).", "response_format");
        string language = Field("language");
        if (language.Length > 32) throw ApiException.BadRequest("language must be a language code such as 'en'.", "language");
        if (Field("temperature") is { Length: > 0 } ts && !double.TryParse(ts, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out _))
            throw ApiException.BadRequest($"temperature '{ts}' is not a number.", "temperature");
        var model = Find(models, modelId, "model");
        if (model.Transcriber is null)
            throw ApiException.BadRequest($"The model '{model.Id}' ({model.Kind.ToString().ToLowerInvariant()}) does not transcribe audio.", "model", "unsupported_model");
        if (file.Length == 0) throw ApiException.BadRequest("'file' is empty.", "file", "invalid_audio");
        if (file.Length > options.MaxMediaBytes) throw ApiException.BadRequest($"'file' exceeds the {options.MaxMediaBytes}-byte limit.", "file", "media_too_large");
        var bytes = new byte[file.Length];
        await using (var s = file.OpenReadStream())
            await s.ReadExactlyAsync(bytes, ctx.RequestAborted).ConfigureAwait(false);
        ChatRequest.CheckAudio(bytes, "file", options);
        Enter(model, options);
        SpeechToTextResponse r;
        var abort = ctx.RequestAborted;
        try
        {
            var sttOptions = new SpeechToTextOptions { SpeechLanguage = language.Length > 0 ? language : null };
            r = await model.Batcher.RunExclusiveAsync(() => model.Transcriber.GetTextAsync(new MemoryStream(bytes), sttOptions, abort).GetAwaiter().GetResult(), abort)
                .ConfigureAwait(false);
        }
        catch (MediaDecodeException e) { throw ApiException.BadRequest(e.Message, "file", "invalid_audio"); }
        catch (OperationCanceledException) when (abort.IsCancellationRequested)
        {
            model.NoteCancelled();
            throw;
        }
        finally { model.Leave(); }
        if (format == "text")
        {
            ctx.Response.StatusCode = 200;
            ctx.Response.ContentType = "text/plain; charset=utf-8";
            await ctx.Response.WriteAsync(r.Text + "\n", abort).ConfigureAwait(false);
            return;
        }
        JsonObject TokenUsage()
        {
            long input = r.Usage?.InputTokenCount ?? 0, output = r.Usage?.OutputTokenCount ?? 0;
            return new JsonObject { ["type"] = "tokens", ["input_tokens"] = input, ["output_tokens"] = output, ["total_tokens"] = input + output };
        }
        if (format == "json")
        {
            await Json(ctx, 200, new JsonObject { ["text"] = r.Text, ["usage"] = TokenUsage() }).ConfigureAwait(false);
            return;
        }
        double duration = (r.EndTime ?? TimeSpan.Zero).TotalSeconds;
        await Json(ctx, 200, new JsonObject
        {
            ["task"] = "transcribe",
            ["language"] = LanguageName(language),
            ["duration"] = duration,
            ["text"] = r.Text,
            ["segments"] = new JsonArray(new JsonObject
            {
                ["id"] = 0,
                ["seek"] = 0,
                ["start"] = 0.0,
                ["end"] = duration,
                ["text"] = r.Text,
                ["tokens"] = new JsonArray(),
                ["temperature"] = 0.0,
                ["avg_logprob"] = 0.0,
                ["compression_ratio"] = 0.0,
                ["no_speech_prob"] = 0.0,
            }),
            ["usage"] = TokenUsage(),
        }).ConfigureAwait(false);
    }

    static string LanguageName(string code) =>
        (code.Length == 0 ? "English" : Extensions.AI.LlamaSpeechToTextClient.LanguageName(code)).ToLowerInvariant();
}

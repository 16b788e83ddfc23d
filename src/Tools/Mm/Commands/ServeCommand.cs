using System.CommandLine;
using Llama3.Multimodal.Server;

namespace Llama3.Multimodal.Tools.Mm.Commands;

/// <summary><c>mm serve</c>: the OpenAI-compatible server.</summary>
public static class ServeCommand
{
    /// <summary>
    /// The command. <paramref name="stop"/> ends a running server (tests); otherwise it runs until Ctrl+C or SIGTERM.
    /// </summary>
    public static Command Create(CliIO io, CancellationToken stop = default)
    {
        var models = new Option<string[]>("--model")
        {
            Description = "model folder to serve, repeatable; a text, vision, speech or video model, detected from its config and served under the folder name (default: the shipped demo models in assets/models/demo)",
            AllowMultipleArgumentsPerToken = false,
        };
        var host = new Option<string>("--host") { Description = "address to bind; any other than a loopback address needs --api-key", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "TCP port (0 = any free port; the address is printed)", DefaultValueFactory = _ => 8080 };
        var apiKey = new Option<string?>("--api-key") { Description = "require 'Authorization: Bearer KEY' on /v1 endpoints (default: none; also read from MM_API_KEY)" };
        var maxQueue = new Option<int>("--max-queue") { Description = "requests a model holds beyond the ones it decodes; more get 429 with Retry-After", DefaultValueFactory = _ => 32 };
        var maxBatch = new Option<int>("--max-batch") { Description = "text requests decoded together per model (continuous batching)", DefaultValueFactory = _ => 8 };
        var context = new Option<int?>("--context") { Description = "tokens per request, prompt plus completion (default: the model's context, at most 4096)" };
        var maxBody = new Option<int>("--max-body-mb") { Description = "largest request body in MiB", DefaultValueFactory = _ => 32 };
        var maxMedia = new Option<int>("--max-media-mb") { Description = "largest decoded image, audio or video item in MiB", DefaultValueFactory = _ => 16 };
        var localMedia = new Option<string?>("--allow-local-media") { Description = "folder whose files image_url and video_url may name by absolute path or file:// URL (default: local paths refused); network URLs are never fetched" };
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        var quantize = CommonOptions.Quantize();
        var keepEmb = CommonOptions.KeepEmbeddings();
        var cmd = new Command("serve",
            "Serve models over an OpenAI-compatible HTTP API: GET /v1/models, POST /v1/chat/completions (text, image_url and video_url data: URLs, " +
            "input_audio; stream; usage token counts), POST /v1/audio/transcriptions, GET /health (per-model counters, cancelled requests). " +
            "A client that disconnects stops its request before the next decode step or speech-encoder layer. Binds 127.0.0.1:8080 by default.")
        { models, host, port, apiKey, maxQueue, maxBatch, context, maxBody, maxMedia, localMedia, device, dtype, quantize, keepEmb };
        cmd.SetAction(p => CommonOptions.Guard(io, () =>
        {
            var (dev, dt) = CommonOptions.DeviceAndDType(p.GetValue(device)!, p.GetValue(dtype));
            var load = CommonOptions.Load(dev, dt, p.GetValue(quantize), p.GetValue(keepEmb));
            var options = new OpenAIServerOptions
            {
                Host = p.GetValue(host)!,
                Port = p.GetValue(port),
                ApiKey = p.GetValue(apiKey) ?? (Environment.GetEnvironmentVariable("MM_API_KEY") is { Length: > 0 } k ? k : null),
                MaxQueue = p.GetValue(maxQueue),
                MaxBatch = p.GetValue(maxBatch),
                ContextTokens = p.GetValue(context),
                MaxBodyBytes = (long)p.GetValue(maxBody) << 20,
                MaxMediaBytes = (long)p.GetValue(maxMedia) << 20,
                LocalMediaRoot = p.GetValue(localMedia),
            }.Validate();
            var dirs = p.GetValue(models) is { Length: > 0 } given ? given.ToList() : DemoModels();
            var served = new List<ServedModel>();
            try
            {
                foreach (var dir in dirs)
                {
                    if (!Directory.Exists(dir)) throw new CliException($"{dir}: model folder not found.");
                    var sw = System.Diagnostics.Stopwatch.StartNew();
                    var m = ServedModel.Load(dir, load, null, options.MaxBatch, options.ContextTokens);
                    served.Add(m);
                    io.Err.WriteLine($"loaded {m.Id} ({m.Kind.ToString().ToLowerInvariant()}, {m.ContextTokens}-token context) from {dir} in {sw.Elapsed.TotalSeconds:0.0} s");
                }
                var server = OpenAIServer.StartAsync(served, options, ownsModels: true).GetAwaiter().GetResult();
                served.Clear();
                try
                {
                    io.Out.WriteLine($"listening on {server.BaseAddress} ({string.Join(", ", server.Models.Select(m => m.Id))}){(options.ApiKey is null ? "" : ", API key required")}");
                    io.Out.Flush();
                    server.WaitForShutdownAsync(stop).GetAwaiter().GetResult();
                }
                finally { server.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
                return 0;
            }
            catch (IOException e) when (e.InnerException is System.Net.Sockets.SocketException || e.GetType().Name.Contains("AddressInUse", StringComparison.Ordinal))
            {
                throw new CliException($"cannot listen on {options.Host}:{options.Port}: {e.Message}");
            }
            finally { foreach (var m in served) m.Dispose(); }
        }));
        return cmd;
    }

    /// <summary>
    /// The shipped demo model folders (assets/models/demo/*, found above the program or the current folder), a
    /// <c>vision-instruct</c> folder first when there is one.
    /// </summary>
    public static List<string> DemoModels()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            {
                string root = Path.Combine(d.FullName, "assets", "models", "demo");
                if (!Directory.Exists(root)) continue;
                return Directory.GetDirectories(root)
                    .Where(x => File.Exists(Path.Combine(x, "config.json")))
                    .OrderBy(x => Path.GetFileName(x) == "vision-instruct" ? 0 : 1).ThenBy(x => Path.GetFileName(x), StringComparer.Ordinal)
                    .ToList();
            }
        throw new CliException($"the shipped models (assets/models/demo) were not found above {AppContext.BaseDirectory}; pass --model DIR.");
    }
}

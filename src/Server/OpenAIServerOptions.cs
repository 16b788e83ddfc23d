using System.Net;

namespace Llama3.Multimodal.Server;

/// <summary>Settings of <see cref="OpenAIServer"/>: where it listens, who may call it, and how much it accepts.</summary>
public sealed record OpenAIServerOptions
{
    /// <summary>Address to bind (default <c>127.0.0.1</c>). Any other than a loopback address needs <see cref="ApiKey"/>.</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>TCP port (default 8080; 0 = any free port, see <see cref="OpenAIServer.BaseAddress"/>).</summary>
    public int Port { get; init; } = 8080;
    /// <summary>When set, every <c>/v1/…</c> request must carry <c>Authorization: Bearer {ApiKey}</c> (<c>/health</c> stays open).</summary>
    public string? ApiKey { get; init; }
    /// <summary>Requests a model holds beyond those it is decoding (default 32); more get 429 with <c>Retry-After</c>.</summary>
    public int MaxQueue { get; init; } = 32;
    /// <summary>Text requests decoded together per model, sharing each decode step (default 8).</summary>
    public int MaxBatch { get; init; } = 8;
    /// <summary>KV-cache columns per model: the longest prompt plus completion (default: the model's context, at most 4096).</summary>
    public int? ContextTokens { get; init; }
    /// <summary>Largest request body in bytes (default 32 MiB); larger ones get 413.</summary>
    public long MaxBodyBytes { get; init; } = 32L << 20;
    /// <summary>Largest decoded image or audio item in bytes (default 16 MiB).</summary>
    public long MaxMediaBytes { get; init; } = 16L << 20;
    /// <summary>Largest image in pixels, width × height, checked before decoding (default 4096 × 4096).</summary>
    public long MaxImagePixels { get; init; } = 4096L * 4096;
    /// <summary>Longest audio in seconds (default 600).</summary>
    public double MaxAudioSeconds { get; init; } = 600;
    /// <summary>Most images or audio items in one request (default 8).</summary>
    public int MaxMediaItems { get; init; } = 8;
    /// <summary>
    /// A folder whose files may be named as media by local path (<c>file:///…</c> or an absolute path) in
    /// <c>image_url</c>; null (default) = local paths are refused. URLs on the network are never fetched.
    /// </summary>
    public string? LocalMediaRoot { get; init; }

    /// <summary>Checks the values; throws <see cref="ArgumentException"/> naming the bad one.</summary>
    public OpenAIServerOptions Validate()
    {
        if (Port is < 0 or > 65535) throw new ArgumentException($"port {Port} must be in 0…65535.");
        if (MaxQueue < 0) throw new ArgumentException($"max queue {MaxQueue} must be ≥ 0.");
        if (MaxBatch < 1) throw new ArgumentException($"max batch {MaxBatch} must be ≥ 1.");
        if (ContextTokens is < 2) throw new ArgumentException($"context {ContextTokens} must be ≥ 2 tokens.");
        if (MaxBodyBytes < 1024) throw new ArgumentException($"max body {MaxBodyBytes} bytes must be ≥ 1024.");
        if (MaxMediaBytes < 1) throw new ArgumentException($"max media {MaxMediaBytes} bytes must be ≥ 1.");
        if (MaxImagePixels < 1) throw new ArgumentException($"max image pixels {MaxImagePixels} must be ≥ 1.");
        if (!(MaxAudioSeconds > 0)) throw new ArgumentException($"max audio seconds {MaxAudioSeconds} must be > 0.");
        if (MaxMediaItems < 0) throw new ArgumentException($"max media items {MaxMediaItems} must be ≥ 0.");
        if (ApiKey is { Length: 0 }) throw new ArgumentException("the API key is empty.");
        var address = ParseHost(Host);
        if (!IPAddress.IsLoopback(address) && ApiKey is null)
            throw new ArgumentException($"binding to {Host} (not a loopback address) requires an API key (--api-key).");
        if (LocalMediaRoot is not null && !Directory.Exists(LocalMediaRoot))
            throw new ArgumentException($"local media folder {LocalMediaRoot} does not exist.");
        return this;
    }

    /// <summary><c>localhost</c> → 127.0.0.1, otherwise an IPv4 or IPv6 literal.</summary>
    internal static IPAddress ParseHost(string host)
    {
        if (string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase)) return IPAddress.Loopback;
        if (IPAddress.TryParse(host.Trim('[', ']'), out var a)) return a;
        throw new ArgumentException($"host '{host}' is not an IP address (use e.g. 127.0.0.1, 0.0.0.0 or ::).");
    }
}

using System.Text.Json;
using Llama3.Multimodal.Speech;
using Microsoft.Extensions.AI;
using SkiaSharp;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace Llama3.Multimodal.Server;

/// <summary>A parsed <c>POST /v1/chat/completions</c> body (OpenAI's request shape), checked field by field.</summary>
public sealed class ChatRequest
{
    /// <summary>The model id.</summary>
    public required string Model { get; init; }
    /// <summary>The conversation, images and audio as <see cref="DataContent"/>.</summary>
    public required List<AIChatMessage> Messages { get; init; }
    /// <summary>Whether a message carries an image.</summary>
    public bool HasImages { get; init; }
    /// <summary>Whether a message carries audio.</summary>
    public bool HasAudio { get; init; }
    /// <summary>Whether a message carries a video (a <c>video_url</c> part).</summary>
    public bool HasVideo { get; init; }
    /// <summary><c>temperature</c> (0…2), or null for the model's default.</summary>
    public double? Temperature { get; init; }
    /// <summary><c>top_p</c> (0…1], or null.</summary>
    public double? TopP { get; init; }
    /// <summary><c>top_k</c> (an extension; 0 or −1 = off), or null.</summary>
    public int? TopK { get; init; }
    /// <summary><c>max_completion_tokens</c>, else <c>max_tokens</c>, or null (= up to the context length).</summary>
    public int? MaxTokens { get; init; }
    /// <summary><c>stop</c> sequences (at most 4).</summary>
    public IReadOnlyList<string> Stop { get; init; } = Array.Empty<string>();
    /// <summary><c>seed</c>, or null (a random one).</summary>
    public long? Seed { get; init; }
    /// <summary><c>stream</c>.</summary>
    public bool Stream { get; init; }
    /// <summary><c>stream_options.include_usage</c>.</summary>
    public bool IncludeUsage { get; init; }

    static ApiException Bad(string message, string param, string? code = null) => ApiException.BadRequest(message, param, code);

    /// <summary>Parses and checks <paramref name="body"/>; every fault is an <see cref="ApiException"/> (400) naming the field.</summary>
    public static ChatRequest Parse(ReadOnlyMemory<byte> body, OpenAIServerOptions options)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 32, AllowDuplicateProperties = false });
        }
        catch (JsonException e)
        {
            throw new ApiException(400, $"the request body is not valid JSON: {e.Message}", null, "invalid_json");
        }
        using (doc)
        {
            try { return Parse(doc.RootElement, options); }
            catch (InvalidOperationException e) { throw new ApiException(400, $"the request body holds invalid text: {e.Message}", null, "invalid_json"); }
        }
    }

    static ChatRequest Parse(JsonElement root, OpenAIServerOptions options)
    {
        if (root.ValueKind != JsonValueKind.Object) throw Bad("the request body must be a JSON object.", "");
        string model = root.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.String && m.GetString() is { Length: > 0 } id
            ? id : throw Bad("'model' is required and must be a non-empty string.", "model");
        if (!root.TryGetProperty("messages", out var msgs) || msgs.ValueKind != JsonValueKind.Array || msgs.GetArrayLength() == 0)
            throw Bad("'messages' is required and must be a non-empty array.", "messages");

        int n = Int(root, "n") ?? 1;
        if (n != 1) throw Bad($"n = {n} is not supported; this server returns one choice.", "n");
        if (root.TryGetProperty("tools", out var tools) && tools.ValueKind == JsonValueKind.Array && tools.GetArrayLength() > 0)
            throw Bad("tools are not supported by this server.", "tools");
        if (root.TryGetProperty("response_format", out var rf) && rf.ValueKind != JsonValueKind.Null)
        {
            string? t = rf.ValueKind == JsonValueKind.Object && rf.TryGetProperty("type", out var tt) && tt.ValueKind == JsonValueKind.String ? tt.GetString() : null;
            if (t != "text") throw Bad("only response_format {\"type\": \"text\"} is supported.", "response_format");
        }
        if (Bool(root, "logprobs") == true) throw Bad("logprobs are not supported by this server.", "logprobs");

        double? temperature = Number(root, "temperature");
        if (temperature is < 0 or > 2) throw Bad($"temperature {temperature} must be in [0, 2].", "temperature");
        double? topP = Number(root, "top_p");
        if (topP is <= 0 or > 1) throw Bad($"top_p {topP} must be in (0, 1].", "top_p");
        int? topK = Int(root, "top_k");
        if (topK is < -1) throw Bad($"top_k {topK} must be ≥ -1 (-1 or 0 = off).", "top_k");
        int? maxTokens = Int(root, "max_tokens");
        if (maxTokens is < 1) throw Bad($"max_tokens {maxTokens} must be ≥ 1.", "max_tokens");
        int? maxCompletion = Int(root, "max_completion_tokens");
        if (maxCompletion is < 1) throw Bad($"max_completion_tokens {maxCompletion} must be ≥ 1.", "max_completion_tokens");
        long? seed = null;
        if (root.TryGetProperty("seed", out var sd) && sd.ValueKind != JsonValueKind.Null)
            seed = sd.ValueKind == JsonValueKind.Number && sd.TryGetInt64(out long sv) ? sv : throw Bad("seed must be an integer.", "seed");
        var stops = new List<string>();
        if (root.TryGetProperty("stop", out var st) && st.ValueKind != JsonValueKind.Null)
        {
            if (st.ValueKind == JsonValueKind.String) stops.Add(st.GetString()!);
            else if (st.ValueKind == JsonValueKind.Array)
            {
                if (st.GetArrayLength() > 4) throw Bad("stop holds more than 4 sequences.", "stop");
                foreach (var x in st.EnumerateArray())
                    stops.Add(x.ValueKind == JsonValueKind.String ? x.GetString()! : throw Bad("stop must be a string or an array of strings.", "stop"));
            }
            else throw Bad("stop must be a string or an array of strings.", "stop");
        }
        bool stream = Bool(root, "stream") ?? false;
        bool includeUsage = false;
        if (root.TryGetProperty("stream_options", out var so) && so.ValueKind != JsonValueKind.Null)
        {
            if (so.ValueKind != JsonValueKind.Object) throw Bad("stream_options must be an object.", "stream_options");
            includeUsage = Bool(so, "include_usage", "stream_options.") ?? false;
        }

        var messages = new List<AIChatMessage>();
        bool images = false, audio = false, video = false;
        int media = 0;
        int i = 0;
        foreach (var msg in msgs.EnumerateArray())
        {
            string at = $"messages[{i}]";
            if (msg.ValueKind != JsonValueKind.Object) throw Bad($"{at} must be an object.", at);
            string role = msg.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : throw Bad($"{at}.role is required and must be a string.", $"{at}.role");
            var chatRole = role switch
            {
                "system" or "developer" => ChatRole.System,
                "user" => ChatRole.User,
                "assistant" => ChatRole.Assistant,
                "tool" => ChatRole.Tool,
                _ => throw Bad($"{at}.role '{role}' is not one of system, developer, user, assistant, tool.", $"{at}.role"),
            };
            var contents = new List<AIContent>();
            if (!msg.TryGetProperty("content", out var c) || c.ValueKind == JsonValueKind.Null)
            {
                if (chatRole != ChatRole.Assistant) throw Bad($"{at}.content is required.", $"{at}.content");
            }
            else if (c.ValueKind == JsonValueKind.String) contents.Add(new TextContent(c.GetString()));
            else if (c.ValueKind == JsonValueKind.Array)
            {
                int j = 0;
                foreach (var part in c.EnumerateArray())
                {
                    string pat = $"{at}.content[{j}]";
                    if (part.ValueKind != JsonValueKind.Object) throw Bad($"{pat} must be an object.", pat);
                    string type = part.TryGetProperty("type", out var tp) && tp.ValueKind == JsonValueKind.String ? tp.GetString()! : throw Bad($"{pat}.type is required.", $"{pat}.type");
                    switch (type)
                    {
                        case "text":
                            contents.Add(new TextContent(part.TryGetProperty("text", out var tx) && tx.ValueKind == JsonValueKind.String ? tx.GetString() : throw Bad($"{pat}.text must be a string.", $"{pat}.text")));
                            break;
                        case "image_url":
                            {
                                if (++media > options.MaxMediaItems) throw Bad($"more than {options.MaxMediaItems} images or audio items.", pat, "too_many_media");
                                string? url = null;
                                if (part.TryGetProperty("image_url", out var iu))
                                {
                                    if (iu.ValueKind == JsonValueKind.String) url = iu.GetString();
                                    else if (iu.ValueKind == JsonValueKind.Object && iu.TryGetProperty("url", out var u) && u.ValueKind == JsonValueKind.String) url = u.GetString();
                                }
                                if (string.IsNullOrEmpty(url)) throw Bad($"{pat}.image_url.url must be a string.", $"{pat}.image_url");
                                contents.Add(Media(url, $"{pat}.image_url", options, "image"));
                                images = true;
                                break;
                            }
                        case "video_url":
                            {
                                if (++media > options.MaxMediaItems) throw Bad($"more than {options.MaxMediaItems} images or audio items.", pat, "too_many_media");
                                if (video) throw Bad($"{pat}: one request may carry one video.", pat, "too_many_media");
                                string? url = null;
                                if (part.TryGetProperty("video_url", out var vu))
                                {
                                    if (vu.ValueKind == JsonValueKind.String) url = vu.GetString();
                                    else if (vu.ValueKind == JsonValueKind.Object && vu.TryGetProperty("url", out var u) && u.ValueKind == JsonValueKind.String) url = u.GetString();
                                }
                                if (string.IsNullOrEmpty(url)) throw Bad($"{pat}.video_url.url must be a string.", $"{pat}.video_url");
                                contents.Add(Media(url, $"{pat}.video_url", options, "video"));
                                video = true;
                                break;
                            }
                        case "input_audio":
                            {
                                if (++media > options.MaxMediaItems) throw Bad($"more than {options.MaxMediaItems} images or audio items.", pat, "too_many_media");
                                if (!part.TryGetProperty("input_audio", out var ia) || ia.ValueKind != JsonValueKind.Object)
                                    throw Bad($"{pat}.input_audio must be an object with data and format.", $"{pat}.input_audio");
                                string data = ia.TryGetProperty("data", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString()! : throw Bad($"{pat}.input_audio.data must be a base64 string.", $"{pat}.input_audio.data");
                                string format = ia.TryGetProperty("format", out var f) && f.ValueKind == JsonValueKind.String ? f.GetString()! : "wav";
                                if (format is not ("wav" or "mp3" or "flac" or "ogg" or "m4a" or "webm"))
                                    throw Bad($"{pat}.input_audio.format '{format}' is not one of wav, mp3, flac, ogg, m4a, webm.", $"{pat}.input_audio.format");
                                var bytes = Base64(data, $"{pat}.input_audio.data", options);
                                CheckAudio(bytes, $"{pat}.input_audio.data", options);
                                contents.Add(new DataContent(bytes, format == "mp3" ? "audio/mpeg" : "audio/" + format));
                                audio = true;
                                break;
                            }
                        default:
                            throw Bad($"{pat}.type '{type}' is not supported (text, image_url, input_audio, video_url).", $"{pat}.type");
                    }
                    j++;
                }
            }
            else throw Bad($"{at}.content must be a string or an array of content parts.", $"{at}.content");
            messages.Add(new AIChatMessage(chatRole, contents));
            i++;
        }
        return new ChatRequest
        {
            Model = model,
            Messages = messages,
            HasImages = images,
            HasAudio = audio,
            HasVideo = video,
            Temperature = temperature,
            TopP = topP,
            TopK = topK,
            MaxTokens = maxCompletion ?? maxTokens,
            Stop = stops,
            Seed = seed,
            Stream = stream,
            IncludeUsage = includeUsage,
        };
    }

    static double? Number(JsonElement o, string name)
    {
        if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && double.IsFinite(d) ? d : throw Bad($"{name} must be a number.", name);
    }

    static int? Int(JsonElement o, string name)
    {
        if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw Bad($"{name} must be an integer (32-bit).", name);
    }

    static bool? Bool(JsonElement o, string name, string prefix = "")
    {
        if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => throw Bad($"{prefix}{name} must be a boolean.", prefix + name) };
    }

    /// <summary>Decodes strict base64 of at most <see cref="OpenAIServerOptions.MaxMediaBytes"/> bytes.</summary>
    internal static byte[] Base64(string data, string param, OpenAIServerOptions options)
    {
        long max = options.MaxMediaBytes;
        if ((long)data.Length / 4 * 3 > max + 3) throw Bad($"{param}: the decoded media exceeds the {max}-byte limit.", param, "media_too_large");
        var buffer = new byte[data.Length / 4 * 3 + 3];
        if (!Convert.TryFromBase64String(data, buffer, out int written))
            throw Bad($"{param}: not valid base64.", param, "invalid_base64");
        if (written > max) throw Bad($"{param}: the decoded media exceeds the {max}-byte limit.", param, "media_too_large");
        if (written == 0) throw Bad($"{param}: the media is empty.", param, "invalid_media");
        return buffer[..written];
    }

    /// <summary>
    /// The bytes of an <c>image_url</c> or <c>video_url</c> (<paramref name="kind"/> "image" or "video"): a base64
    /// <c>data:</c> URL, or a local file inside <see cref="OpenAIServerOptions.LocalMediaRoot"/>; never a network fetch.
    /// </summary>
    static DataContent Media(string url, string param, OpenAIServerOptions options, string kind)
    {
        byte[] bytes;
        string mediaType;
        string example = kind == "video" ? "data:video/mp4;base64,…" : "data:image/png;base64,…";
        if (url.StartsWith("data:", StringComparison.OrdinalIgnoreCase))
        {
            int comma = url.IndexOf(',');
            if (comma < 0) throw Bad($"{param}: a data URL needs a comma before its data.", param, $"invalid_{kind}_url");
            string meta = url[5..comma];
            if (!meta.EndsWith(";base64", StringComparison.OrdinalIgnoreCase)) throw Bad($"{param}: only base64 data URLs are accepted ({example}).", param, $"invalid_{kind}_url");
            mediaType = meta[..^7];
            if (mediaType.Length == 0) mediaType = kind == "video" ? "video/mp4" : "image/png";
            if (!mediaType.StartsWith(kind + "/", StringComparison.OrdinalIgnoreCase)) throw Bad($"{param}: media type '{mediaType}' is not {(kind == "video" ? "a video" : "an image")} type.", param, $"invalid_{kind}_url");
            bytes = Base64(url[(comma + 1)..], param, options);
        }
        else if (url.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || url.StartsWith("https://", StringComparison.OrdinalIgnoreCase)
            || url.Contains("://", StringComparison.Ordinal) && !url.StartsWith("file://", StringComparison.OrdinalIgnoreCase))
        {
            throw Bad($"{param}: the server never fetches URLs; send the {kind} as a data: URL ({example}).", param, $"invalid_{kind}_url");
        }
        else
        {
            if (options.LocalMediaRoot is null)
                throw Bad($"{param}: local file paths are refused unless the server allows a local media folder (--allow-local-media DIR); send a data: URL.", param, $"invalid_{kind}_url");
            string path = url.StartsWith("file://", StringComparison.OrdinalIgnoreCase) ? Uri.UnescapeDataString(url[7..]) : url;
            string full, root = Path.GetFullPath(options.LocalMediaRoot).TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
            try { full = Path.GetFullPath(path); }
            catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException) { throw Bad($"{param}: '{path}' is not a valid path.", param, $"invalid_{kind}_url"); }
            if (!Path.IsPathRooted(path) || !full.StartsWith(root, StringComparison.Ordinal))
                throw Bad($"{param}: '{path}' is not an absolute path inside the allowed media folder.", param, $"invalid_{kind}_url");
            var info = new FileInfo(full);
            if (info.LinkTarget is not null || !info.Exists) throw Bad($"{param}: file '{path}' not found.", param, $"invalid_{kind}_url");
            if (info.Length > options.MaxMediaBytes) throw Bad($"{param}: file '{path}' exceeds the {options.MaxMediaBytes}-byte limit.", param, "media_too_large");
            bytes = File.ReadAllBytes(full);
            mediaType = kind + "/" + Path.GetExtension(full).TrimStart('.').ToLowerInvariant();
        }
        if (kind == "image") CheckImage(bytes, param, options);
        return new DataContent(bytes, mediaType) { Name = param };
    }

    /// <summary>Reads only the image header: refuses undecodable data and images over the pixel limit before decoding.</summary>
    static void CheckImage(byte[] bytes, string param, OpenAIServerOptions options)
    {
        using var data = SKData.CreateCopy(bytes);
        using var codec = SKCodec.Create(data);
        if (codec is null) throw Bad($"{param}: not a recognised image (PNG, JPEG, BMP, GIF, WebP).", param, "invalid_image");
        var info = codec.Info;
        if (info.Width <= 0 || info.Height <= 0 || (long)info.Width * info.Height > options.MaxImagePixels)
            throw Bad($"{param}: image of {info.Width}x{info.Height} pixels exceeds the {options.MaxImagePixels}-pixel limit.", param, "media_too_large");
    }

    /// <summary>A WAV is parsed here so that its length is checked before resampling; other formats go to ffmpeg.</summary>
    internal static void CheckAudio(byte[] bytes, string param, OpenAIServerOptions options)
    {
        if (!WavReader.LooksLikeWav(bytes)) return;
        AudioClip clip;
        try { clip = WavReader.Parse(bytes, param); }
        catch (Text.MediaDecodeException e) { throw Bad($"{param}: {e.Message}", param, "invalid_audio"); }
        if (clip.SampleRate < 1000 || clip.SampleRate > 384000) throw Bad($"{param}: sample rate {clip.SampleRate} Hz is outside 1000…384000 Hz.", param, "invalid_audio");
        if (clip.Seconds > options.MaxAudioSeconds) throw Bad($"{param}: audio of {clip.Seconds:0.#} s exceeds the {options.MaxAudioSeconds} s limit.", param, "media_too_large");
        if (clip.Frames == 0) throw Bad($"{param}: the audio holds no samples.", param, "invalid_audio");
    }
}

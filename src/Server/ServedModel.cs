using Llama3.Multimodal.Extensions.AI;
using Llama3.Multimodal.Speech;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Video;
using Llama3.Multimodal.Vision;
using TorchSharp;

namespace Llama3.Multimodal.Server;

/// <summary>What a model folder holds.</summary>
public enum ServedModelKind
{
    /// <summary>A text decoder (<c>model_type</c> <c>llama</c>, or Meta's <c>params.json</c>).</summary>
    Text,
    /// <summary>A vision model (<c>model_type</c> <c>mllama</c>): text and images.</summary>
    Vision,
    /// <summary>A speech model (<c>model_type</c> <c>llama3_speech</c>): text and audio, and transcription.</summary>
    Speech,
    /// <summary>A video model (<c>mllama</c> with <c>video_config.json</c>): text, images (its image model) and videos.</summary>
    Video,
}

/// <summary>
/// One model as the server serves it: its id, the decoder that text requests share through a
/// <see cref="ContinuousBatcher"/>, the <see cref="LlamaChatClient"/> that runs requests with media (between decode
/// steps, on the batcher's thread), the transcription client of a speech model, and a bounded count of pending requests.
/// </summary>
public sealed class ServedModel : IDisposable
{
    readonly IDisposable? _owned;
    int _pending;
    long _mediaTokens, _cancelled;

    /// <summary>The model id clients send (the folder name by default).</summary>
    public string Id { get; }
    /// <summary>What it is.</summary>
    public ServedModelKind Kind { get; }
    /// <summary>The text decoder.</summary>
    public LlamaForCausalLM Decoder { get; }
    /// <summary>Its tokenizer.</summary>
    public Llama3Tokenizer Tokenizer { get; }
    /// <summary>The chat client (prompt layout, images, audio).</summary>
    public LlamaChatClient Chat { get; }
    /// <summary>The transcription client of a speech model, or null.</summary>
    public LlamaSpeechToTextClient? Transcriber { get; }
    /// <summary>Runs every use of the model: text requests batched, media requests between steps.</summary>
    public ContinuousBatcher Batcher { get; }
    /// <summary>Whether chat messages may carry images.</summary>
    public bool AcceptsImages => Kind is ServedModelKind.Vision or ServedModelKind.Video;
    /// <summary>Whether chat messages may carry audio (and transcription is served).</summary>
    public bool AcceptsAudio => Kind == ServedModelKind.Speech;
    /// <summary>Whether chat messages may carry a video (<c>video_url</c>).</summary>
    public bool AcceptsVideo => Kind == ServedModelKind.Video;
    /// <summary>
    /// Tokens generated so far for requests that run outside the batcher (images, audio, video and transcriptions); text
    /// requests are counted by the batcher (<see cref="ContinuousBatcher.RowSteps"/>).
    /// </summary>
    public long MediaTokens => Interlocked.Read(ref _mediaTokens);
    /// <summary>Requests stopped because their client went away (or cancelled them) before they finished.</summary>
    public long Cancelled => Interlocked.Read(ref _cancelled);
    /// <summary>Prompt plus completion tokens one request may use.</summary>
    public int ContextTokens => Batcher.Capacity;
    /// <summary>Default sampling of the folder's <c>generation_config.json</c> (temperature, top_p, top_k), or nulls.</summary>
    public (double? Temperature, double? TopP, int? TopK) Defaults { get; init; }
    /// <summary>Unix time the model was loaded.</summary>
    public long Created { get; } = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    /// <summary>Requests admitted and not finished.</summary>
    public int Pending => Volatile.Read(ref _pending);

    ServedModel(string id, ServedModelKind kind, LlamaForCausalLM decoder, Llama3Tokenizer tokenizer, LlamaChatClient chat,
        LlamaSpeechToTextClient? transcriber, IDisposable? owned, int maxBatch, int? context)
    {
        if (string.IsNullOrWhiteSpace(id)) throw new ArgumentException("a model id is empty.");
        Id = id;
        Kind = kind;
        Decoder = decoder;
        Tokenizer = tokenizer;
        Chat = chat;
        Transcriber = transcriber;
        _owned = owned;
        chat.TokenGenerated += _ => Interlocked.Increment(ref _mediaTokens);
        if (transcriber is not null) transcriber.TokenGenerated += _ => Interlocked.Increment(ref _mediaTokens);
        Batcher = new ContinuousBatcher(decoder, tokenizer, maxBatch, Math.Min(context ?? 4096, decoder.Config.MaxPositionEmbeddings));
    }

    /// <summary>Serves a text decoder (owned by the caller).</summary>
    public static ServedModel FromText(string id, LlamaForCausalLM model, Llama3Tokenizer? tokenizer = null, int maxBatch = 8, int? context = null)
    {
        var tok = tokenizer ?? Llama3Tokenizer.Default;
        return new ServedModel(id, ServedModelKind.Text, model, tok, new LlamaChatClient(model, tok, modelId: id), null, null, maxBatch, context);
    }

    /// <summary>Serves a vision model (owned by the caller).</summary>
    public static ServedModel FromVision(string id, VisionLanguageModel model, int maxBatch = 8, int? context = null) =>
        new(id, ServedModelKind.Vision, model.language_model, model.Tokenizer, new LlamaChatClient(vision: model, modelId: id), null, null, maxBatch, context);

    /// <summary>Serves a speech model (owned by the caller).</summary>
    public static ServedModel FromSpeech(string id, SpeechLanguageModel model, int maxBatch = 8, int? context = null) =>
        new(id, ServedModelKind.Speech, model.language_model, model.Tokenizer, new LlamaChatClient(speech: model, modelId: id),
            new LlamaSpeechToTextClient(model, id), null, maxBatch, context);

    /// <summary>Serves a video model for text, images (through the image model it composes) and videos (owned by the caller).</summary>
    public static ServedModel FromVideo(string id, VideoLanguageModel model, int maxBatch = 8, int? context = null) =>
        new(id, ServedModelKind.Video, model.language_model, model.Tokenizer, new LlamaChatClient(video: model, modelId: id), null, null, maxBatch, context);

    /// <summary>
    /// What the folder holds, from its <c>config.json</c> (<c>model_type</c>) or Meta <c>params.json</c>; throws
    /// <see cref="ConfigException"/> naming the file and value otherwise.
    /// </summary>
    public static ServedModelKind Detect(string directory)
    {
        if (!Directory.Exists(directory)) throw new ConfigException($"{directory}: model folder not found.");
        string cfg = Path.Combine(directory, "config.json");
        if (!File.Exists(cfg))
        {
            if (File.Exists(Path.Combine(directory, "params.json"))) return ServedModelKind.Text;
            throw new ConfigException($"{directory}: neither config.json nor params.json found.");
        }
        if (new FileInfo(cfg).Length > LlamaConfigJson.MaxFileBytes) throw new ConfigException($"{cfg}: larger than {LlamaConfigJson.MaxFileBytes} bytes.");
        var o = LlamaConfigJson.ReadObject(cfg);
        string? type = o["model_type"] is System.Text.Json.Nodes.JsonValue v && v.TryGetValue(out string? s) ? s : null;
        return type switch
        {
            "llama" => ServedModelKind.Text,
            "mllama" => VideoLanguageModel.IsVideoModelDirectory(directory) ? ServedModelKind.Video : ServedModelKind.Vision,
            "llama3_speech" => ServedModelKind.Speech,
            _ => throw new ConfigException($"{cfg}: model_type '{type ?? "(none)"}' is not one the server loads (llama, mllama, llama3_speech)."),
        };
    }

    /// <summary>
    /// Loads a model folder (text, vision, speech or video, see <see cref="Detect"/>) with the loaders'
    /// <c>FromPretrained</c>; the id defaults to the folder name. The model is disposed with this object.
    /// </summary>
    public static ServedModel Load(string directory, string? id = null, int maxBatch = 8, int? context = null, torch.Device? device = null,
        torch.ScalarType dtype = torch.ScalarType.Float32) =>
        Load(directory, new LoadOptions { Device = device, DType = dtype }, id, maxBatch, context);

    /// <summary>
    /// Loads a model folder as <see cref="Load(string, string?, int, int?, torch.Device?, torch.ScalarType)"/> does, with the
    /// loaders' <see cref="LoadOptions"/> (device, dtype and q8 weight quantization at load time).
    /// </summary>
    public static ServedModel Load(string directory, LoadOptions options, string? id = null, int maxBatch = 8, int? context = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var kind = Detect(directory);
        id ??= Path.GetFileName(Path.GetFullPath(directory).TrimEnd(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar));
        var defaults = ReadDefaults(directory);
        switch (kind)
        {
            case ServedModelKind.Vision:
                {
                    var m = VisionLanguageModel.FromPretrained(directory, options);
                    return new ServedModel(id, kind, m.language_model, m.Tokenizer, new LlamaChatClient(vision: m, modelId: id), null, m, maxBatch, context) { Defaults = defaults };
                }
            case ServedModelKind.Speech:
                {
                    var m = SpeechLanguageModel.FromPretrained(directory, options);
                    return new ServedModel(id, kind, m.language_model, m.Tokenizer, new LlamaChatClient(speech: m, modelId: id), new LlamaSpeechToTextClient(m, id), m, maxBatch, context) { Defaults = defaults };
                }
            case ServedModelKind.Video:
                {
                    var m = VideoLanguageModel.FromPretrained(directory, options);
                    return new ServedModel(id, kind, m.language_model, m.Tokenizer, new LlamaChatClient(video: m, modelId: id), null, m, maxBatch, context) { Defaults = defaults };
                }
            default:
                {
                    var m = LlamaForCausalLM.FromPretrained(directory, options);
                    var tok = Llama3Tokenizer.FromModelDirectory(directory) ?? Llama3Tokenizer.Default;
                    return new ServedModel(id, kind, m, tok, new LlamaChatClient(m, tok, modelId: id), null, m, maxBatch, context) { Defaults = defaults };
                }
        }
    }

    static (double?, double?, int?) ReadDefaults(string directory)
    {
        string path = Path.Combine(directory, "generation_config.json");
        if (!File.Exists(path) || new FileInfo(path).Length > LlamaConfigJson.MaxFileBytes) return (null, null, null);
        var o = LlamaConfigJson.ReadObject(path);
        double? D(string k) => o[k] is System.Text.Json.Nodes.JsonValue v && v.TryGetValue(out double d) ? d : null;
        int? I(string k) => o[k] is System.Text.Json.Nodes.JsonValue v && v.TryGetValue(out int i) ? i : null;
        // Transformers' generation config with do_sample = false decodes greedily.
        bool greedy = o["do_sample"] is System.Text.Json.Nodes.JsonValue s && s.TryGetValue(out bool b) && !b;
        return greedy ? (0.0, null, null) : (D("temperature"), D("top_p"), I("top_k"));
    }

    /// <summary>Admits a request when fewer than <paramref name="limit"/> are pending; pair with <see cref="Leave"/>.</summary>
    public bool TryEnter(int limit)
    {
        while (true)
        {
            int n = Volatile.Read(ref _pending);
            if (n >= limit) return false;
            if (Interlocked.CompareExchange(ref _pending, n + 1, n) == n) return true;
        }
    }

    /// <summary>Ends a request admitted by <see cref="TryEnter"/>.</summary>
    public void Leave() => Interlocked.Decrement(ref _pending);

    /// <summary>Counts a request that stopped because its client went away (see <see cref="Cancelled"/>).</summary>
    public void NoteCancelled() => Interlocked.Increment(ref _cancelled);

    /// <summary>Stops the batcher and disposes the clients and, when this object loaded it, the model.</summary>
    public void Dispose()
    {
        Batcher.Dispose();
        Chat.Dispose();
        Transcriber?.Dispose();
        _owned?.Dispose();
    }
}

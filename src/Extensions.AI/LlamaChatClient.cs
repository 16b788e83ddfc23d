using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Llama3.Multimodal.Speech;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Video;
using Llama3.Multimodal.Vision;
using Microsoft.Extensions.AI;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;
using LlamaChatMessage = Llama3.Multimodal.Text.ChatMessage;

namespace Llama3.Multimodal.Extensions.AI;

/// <summary>
/// <see cref="IChatClient"/> over local Llama 3 models. Text-only conversations run on the text decoder; messages that
/// carry images (<see cref="DataContent"/> with an <c>image/*</c> media type) run on the vision model with one
/// <c>&lt;|image|&gt;</c> per image in the Llama 3.2 Vision chat format; messages that carry audio (<c>audio/*</c>) run on
/// the speech model, with the message text as the task prompt (default: transcription); a message that carries a video
/// (<c>video/*</c>, one per conversation) runs on the video model with a <c>&lt;|video|&gt;</c> in its place, its frames
/// sampled with ffmpeg. Options map to
/// <see cref="GenerationOptions"/>: temperature, top-p, top-k, max output tokens, seed and stop sequences.
/// A model trained for plain completion (<see cref="VisionPromptFormat.Completion"/>, e.g. a vision model after the
/// pretraining stages) gets the messages' text concatenated after its images and <c>&lt;|begin_of_text|&gt;</c>, as it was
/// trained, instead of the chat format.
/// </summary>
public sealed class LlamaChatClient : IChatClient
{
    readonly LlamaForCausalLM? _text;
    readonly Llama3Tokenizer _tokenizer;
    readonly VisionLanguageModel? _vision;
    readonly SpeechLanguageModel? _speech;
    readonly VideoLanguageModel? _video;
    readonly string _modelId;
    readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>
    /// Creates a client; give the models you have (at least one). The text decoder defaults to the vision, video or
    /// speech model's, the vision model to the video model's image model; <paramref name="promptFormat"/> defaults to the
    /// vision model's (<see cref="VisionPromptFormat.Instruct"/> without one).
    /// </summary>
    public LlamaChatClient(LlamaForCausalLM? text = null, Llama3Tokenizer? tokenizer = null, VisionLanguageModel? vision = null,
        SpeechLanguageModel? speech = null, string modelId = "llama3-multimodal", VisionPromptFormat? promptFormat = null,
        VideoLanguageModel? video = null)
    {
        vision ??= video?.ImageModel;
        PromptFormat = promptFormat ?? vision?.PromptFormat ?? VisionPromptFormat.Instruct;
        if (text is null && vision is null && speech is null) throw new ArgumentException("give at least one model (text, vision, video or speech).");
        _text = text ?? vision?.language_model ?? speech!.language_model;
        _tokenizer = tokenizer ?? vision?.Tokenizer ?? speech?.Tokenizer ?? Llama3Tokenizer.Default;
        _vision = vision;
        _speech = speech;
        _video = video;
        _modelId = modelId;
    }

    /// <summary>
    /// Raised with each generated token id of every request (text, images, audio or video), on the thread that
    /// generates it: for progress and metrics; keep handlers short.
    /// </summary>
    public event Action<int>? TokenGenerated;

    /// <summary>How text and image conversations are laid out for the decoder.</summary>
    public VisionPromptFormat PromptFormat { get; }

    /// <summary>
    /// The prompt ids a text-only conversation is decoded from (the chat format ending with the assistant header, or
    /// the completion layout); throws <see cref="NotSupportedException"/> when a message carries images or audio.
    /// </summary>
    public IReadOnlyList<int> EncodePrompt(IEnumerable<AIChatMessage> messages)
    {
        using var req = Convert(messages);
        if (req.Images.Count > 0 || req.Audio.Count > 0 || req.Video is not null) throw new NotSupportedException("the conversation carries media; only text conversations are encoded here.");
        return Encode(req);
    }

    List<int> Encode(Request req)
    {
        if (req.Video is not null)
        {
            int videoToken = _video!.Config.Video.VideoTokenId;
            if (PromptFormat == VisionPromptFormat.Completion)
                return VideoPrompt.EncodeCompletion(_tokenizer, string.Concat(req.Dialog.Select(m => m.Content)), videoToken);
            return new ChatFormat(_tokenizer).EncodeDialog(req.Dialog, true, new Dictionary<string, int> { [VideoPrompt.VideoPlaceholder] = videoToken });
        }
        int imageToken = _vision?.Config.ImageTokenIndex ?? 0;
        if (PromptFormat == VisionPromptFormat.Completion)
        {
            string text = string.Concat(req.Dialog.Select(m => m.Content));
            return req.Images.Count > 0 ? VisionPrompt.EncodeMediaFirst(_tokenizer, text, VisionPrompt.ImagePlaceholder, imageToken)
                : new[] { _tokenizer.BosId }.Concat(new ChatFormat(_tokenizer).EncodeContent(text, null)).ToList();
        }
        return req.Images.Count > 0 ? VisionPrompt.EncodeDialog(_tokenizer, req.Dialog, true, imageToken) : new ChatFormat(_tokenizer).EncodeDialog(req.Dialog, true);
    }

    /// <summary>Maps MEAI options to ours (null fields keep our defaults: greedy, 256 new tokens).</summary>
    public static GenerationOptions MapOptions(ChatOptions? o) => new GenerationOptions
    {
        MaxNewTokens = o?.MaxOutputTokens ?? 256,
        Temperature = o?.Temperature ?? 0,
        TopP = o?.TopP ?? 1.0,
        TopK = o?.TopK ?? 0,
        Seed = o?.Seed ?? 0,
    }.Validate();

    sealed record Request(List<LlamaChatMessage> Dialog, List<RgbImage> Images, List<float[]> Audio, string AudioPrompt, VideoFrames? Video) : IDisposable
    {
        public void Dispose() => Video?.Dispose();
    }

    /// <summary>Samples the video model's frames of a clip held in memory; a decoding failure names the content.</summary>
    VideoFrames ReadVideo(DataContent d)
    {
        string name = d.Name ?? $"{d.MediaType} content";
        string ext = d.MediaType.ToLowerInvariant() switch
        {
            "video/webm" => "webm", "video/x-matroska" => "mkv", "video/quicktime" => "mov", "video/x-msvideo" => "avi", _ => "mp4",
        };
        using var file = new InMemoryFile(d.Data.ToArray(), ext);
        try { return _video!.ReadFrames(file.Path); }
        catch (MediaDecodeException e) { throw new MediaDecodeException(name, e.Message.Replace(file.Path + ": ", "").Replace(file.Path, "(in memory)"), e); }
    }

    Request Convert(IEnumerable<AIChatMessage> messages)
    {
        var dialog = new List<LlamaChatMessage>();
        var images = new List<RgbImage>();
        var audio = new List<float[]>();
        VideoFrames? video = null;
        string audioPrompt = SpeechLanguageModel.AsrPrompt("English");
        try
        {
            foreach (var m in messages)
            {
                string role = m.Role.Value switch { "system" => "system", "user" => "user", "assistant" => "assistant", "tool" => "ipython", var r => throw new ArgumentException($"chat role '{r}' is not supported.") };
                var text = new System.Text.StringBuilder();
                bool hasAudio = false;
                foreach (var c in m.Contents)
                {
                    switch (c)
                    {
                        case TextContent t: text.Append(t.Text); break;
                        case DataContent d when d.HasTopLevelMediaType("image"):
                            if (_vision is null) throw new NotSupportedException("this client has no vision model; images cannot be used.");
                            images.Add(ImageLoader.Decode(d.Data.ToArray(), d.Name ?? $"{d.MediaType} content"));
                            text.Append("<|image|>");
                            break;
                        case DataContent d when d.HasTopLevelMediaType("video"):
                            if (_video is null) throw new NotSupportedException("this client has no video model; videos cannot be used.");
                            if (video is not null) throw new NotSupportedException("one conversation may carry one video.");
                            video = ReadVideo(d);
                            text.Append(VideoPrompt.VideoPlaceholder);
                            break;
                        case DataContent d when d.HasTopLevelMediaType("audio"):
                            if (_speech is null) throw new NotSupportedException("this client has no speech model; audio cannot be used.");
                            audio.Add(AudioBytes.Decode(d.Data.ToArray(), d.MediaType, d.Name));
                            hasAudio = true;
                            break;
                        case DataContent d:
                            throw new NotSupportedException($"content of media type '{d.MediaType}' is not supported (images, audio and video are).");
                        default:
                            break;
                    }
                }
                if (hasAudio && text.Length > 0) audioPrompt = text.ToString().Trim();
                dialog.Add(new LlamaChatMessage(role, text.ToString()));
            }
            if ((audio.Count > 0 ? 1 : 0) + (images.Count > 0 ? 1 : 0) + (video is not null ? 1 : 0) > 1)
                throw new NotSupportedException("one request may carry images, audio or a video, not two of these.");
            return new Request(dialog, images, audio, audioPrompt, video);
        }
        catch
        {
            video?.Dispose();
            throw;
        }
    }

    (string Text, int PromptTokens, int OutputTokens, string Finish) Run(Request req, ChatOptions? options, Action<string>? onText, CancellationToken cancel)
    {
        var gopts = MapOptions(options);
        var stops = options?.StopSequences?.Where(s => !string.IsNullOrEmpty(s)).ToList() ?? new List<string>();
        if (req.Audio.Count > 0)
        {
            var texts = new List<string>();
            int promptTokens = 0, outputTokens = 0;
            foreach (var a in req.Audio)
            {
                var heard = _speech!.Run(a, req.AudioPrompt, gopts, id => TokenGenerated?.Invoke(id), cancel);
                texts.Add(heard.Text);
                promptTokens += heard.PromptTokens;
                outputTokens += heard.GeneratedTokens;
            }
            string joined = string.Join("\n", texts);
            onText?.Invoke(joined);
            return (joined, promptTokens, outputTokens, "stop");
        }
        var ids = Encode(req);
        using var stopSource = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        var dec = _tokenizer.NewStreamingDecoder();
        var sb = new System.Text.StringBuilder();
        int emitted = 0;
        bool stoppedByText = false;
        void OnToken(int id)
        {
            TokenGenerated?.Invoke(id);
            if (stoppedByText) return;
            sb.Append(dec.Push(id));
            string s = sb.ToString();
            int cut = stops.Select(x => s.IndexOf(x, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(-1).Min();
            // Hold back text that could still become a stop sequence.
            int safe = cut >= 0 ? cut : Math.Max(emitted, s.Length - (stops.Count == 0 ? 0 : stops.Max(x => x.Length) - 1));
            if (safe > emitted) { onText?.Invoke(s[emitted..safe]); emitted = safe; }
            if (cut >= 0) { stoppedByText = true; stopSource.Cancel(); }
        }
        GenerationResult r = req.Video is not null ? _video!.Generate(ids, req.Video, gopts, OnToken, stopSource.Token)
            : req.Images.Count > 0
            ? _vision!.GenerateBatch(new[] { (IReadOnlyList<int>)ids }, new[] { (IReadOnlyList<RgbImage>)req.Images }, gopts, (_, id) => OnToken(id), stopSource.Token)[0]
            : new TextGenerator(_text!, _tokenizer).Generate(ids, gopts, OnToken, cancel: stopSource.Token);
        string all = sb.Append(dec.Flush()).ToString();
        int end = stops.Select(x => all.IndexOf(x, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(all.Length).Min();
        if (end > emitted) onText?.Invoke(all[emitted..end]);
        cancel.ThrowIfCancellationRequested();
        return (all[..end], ids.Count, r.Tokens.Count, stoppedByText ? "stop" : r.FinishReason);
    }

    static ChatFinishReason Finish(string f) => f == "length" ? ChatFinishReason.Length : ChatFinishReason.Stop;

    /// <inheritdoc/>
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<AIChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        using var req = Convert(messages);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var (text, prompt, output, finish) = await Task.Run(() => Run(req, options, null, cancellationToken), cancellationToken).ConfigureAwait(false);
            return new ChatResponse(new AIChatMessage(ChatRole.Assistant, text))
            {
                ModelId = _modelId,
                FinishReason = Finish(finish),
                Usage = new UsageDetails { InputTokenCount = prompt, OutputTokenCount = output, TotalTokenCount = prompt + output },
                CreatedAt = DateTimeOffset.UtcNow,
            };
        }
        finally { _gate.Release(); }
    }

    /// <inheritdoc/>
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<AIChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var req = Convert(messages);
        var channel = Channel.CreateUnbounded<string>();
        try { await _gate.WaitAsync(cancellationToken).ConfigureAwait(false); }
        catch { req.Dispose(); throw; }
        string finish = "stop";
        int promptTokens = 0, outputTokens = 0;
        var task = Task.Run(() =>
        {
            try
            {
                (_, promptTokens, outputTokens, finish) = Run(req, options, s => channel.Writer.TryWrite(s), cancellationToken);
                channel.Writer.Complete();
            }
            catch (Exception e) { channel.Writer.Complete(e); }
            finally { req.Dispose(); _gate.Release(); }
        }, CancellationToken.None);
        string id = Guid.NewGuid().ToString("N");
        // The run sees the token and ends the channel (with the cancellation) itself: reading on until then means the
        // model is no longer in use once the enumeration ends.
        await foreach (var piece in channel.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
            yield return new ChatResponseUpdate(ChatRole.Assistant, piece) { ModelId = _modelId, ResponseId = id };
        await task.ConfigureAwait(false);
        var usage = new UsageDetails { InputTokenCount = promptTokens, OutputTokenCount = outputTokens, TotalTokenCount = promptTokens + outputTokens };
        yield return new ChatResponseUpdate(ChatRole.Assistant, new List<AIContent> { new UsageContent(usage) }) { ModelId = _modelId, ResponseId = id, FinishReason = Finish(finish) };
    }

    /// <inheritdoc/>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        if (serviceKey is not null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return new ChatClientMetadata("Llama3.Multimodal", null, _modelId);
        if (serviceType.IsInstanceOfType(this)) return this;
        if (_vision is not null && serviceType.IsInstanceOfType(_vision)) return _vision;
        if (_speech is not null && serviceType.IsInstanceOfType(_speech)) return _speech;
        if (_video is not null && serviceType.IsInstanceOfType(_video)) return _video;
        if (_text is not null && serviceType.IsInstanceOfType(_text)) return _text;
        return null;
    }

    /// <summary>Releases the client's lock; the models stay owned by the caller.</summary>
    public void Dispose() => _gate.Dispose();
}

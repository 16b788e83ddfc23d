using System.Runtime.CompilerServices;
using Llama3.Multimodal.Speech;
using Microsoft.Extensions.AI;

namespace Llama3.Multimodal.Extensions.AI;

/// <summary>
/// <see cref="ISpeechToTextClient"/> (experimental in Microsoft.Extensions.AI) over a <see cref="SpeechLanguageModel"/>:
/// the audio stream (WAV, or any format ffmpeg reads) is transcribed with the ASR prompt in
/// <see cref="SpeechToTextOptions.SpeechLanguage"/> (default English).
/// </summary>
public sealed class LlamaSpeechToTextClient : ISpeechToTextClient
{
    readonly SpeechLanguageModel _model;
    readonly string _modelId;
    readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>Creates the client over <paramref name="model"/> (owned by the caller).</summary>
    public LlamaSpeechToTextClient(SpeechLanguageModel model, string modelId = "llama3-multimodal-speech")
    {
        _model = model;
        _modelId = modelId;
    }

    async Task<SpeechResult> RunAsync(Stream audio, SpeechToTextOptions? options, CancellationToken cancel)
    {
        using var ms = new MemoryStream();
        await audio.CopyToAsync(ms, cancel).ConfigureAwait(false);
        var samples = AudioBytes.Decode(ms.ToArray(), "audio/unknown", "audio stream");
        string language = string.IsNullOrWhiteSpace(options?.SpeechLanguage) ? "English" : LanguageName(options!.SpeechLanguage!);
        await _gate.WaitAsync(cancel).ConfigureAwait(false);
        // The run checks the token between encoder layers and decode steps; it is awaited to its end either way, so the
        // model is free once this returns.
        try { return await Task.Run(() => _model.Run(samples, SpeechLanguageModel.AsrPrompt(language), null, id => TokenGenerated?.Invoke(id), cancel), CancellationToken.None).ConfigureAwait(false); }
        finally { _gate.Release(); }
    }

    /// <summary>
    /// Raised with each generated token id of every transcription, on the thread that generates it: for progress and
    /// metrics; keep handlers short.
    /// </summary>
    public event Action<int>? TokenGenerated;

    static readonly Dictionary<string, string> Languages = new(StringComparer.OrdinalIgnoreCase)
    {
        ["en"] = "English", ["fr"] = "French", ["de"] = "German", ["es"] = "Spanish", ["it"] = "Italian", ["pt"] = "Portuguese",
        ["nl"] = "Dutch", ["sv"] = "Swedish", ["da"] = "Danish", ["no"] = "Norwegian", ["nb"] = "Norwegian", ["fi"] = "Finnish",
        ["pl"] = "Polish", ["cs"] = "Czech", ["ru"] = "Russian", ["uk"] = "Ukrainian", ["el"] = "Greek", ["tr"] = "Turkish",
        ["ar"] = "Arabic", ["he"] = "Hebrew", ["hi"] = "Hindi", ["th"] = "Thai", ["vi"] = "Vietnamese", ["id"] = "Indonesian",
        ["zh"] = "Chinese", ["ja"] = "Japanese", ["ko"] = "Korean", ["ro"] = "Romanian", ["hu"] = "Hungarian", ["ca"] = "Catalan",
    };

    /// <summary>
    /// The language name the ASR prompt uses: an ISO 639-1 code, alone or with a region (<c>en</c>, <c>en-US</c>), becomes
    /// its English name (<c>English</c>); anything else (a full name such as <c>French</c>) passes through.
    /// </summary>
    public static string LanguageName(string code)
    {
        ArgumentNullException.ThrowIfNull(code);
        string c = code.Trim();
        int dash = c.IndexOfAny(new[] { '-', '_' });
        return Languages.TryGetValue(dash > 0 ? c[..dash] : c, out var name) ? name : c;
    }

    /// <inheritdoc/>
    public async Task<SpeechToTextResponse> GetTextAsync(Stream audioSpeechStream, SpeechToTextOptions? options = null, CancellationToken cancellationToken = default)
    {
        var r = await RunAsync(audioSpeechStream, options, cancellationToken).ConfigureAwait(false);
        return new SpeechToTextResponse(r.Text)
        {
            ModelId = _modelId,
            StartTime = TimeSpan.Zero,
            EndTime = TimeSpan.FromSeconds(r.AudioSeconds),
            Usage = new UsageDetails { InputTokenCount = r.PromptTokens, OutputTokenCount = r.GeneratedTokens, TotalTokenCount = r.PromptTokens + r.GeneratedTokens },
        };
    }

    /// <inheritdoc/>
    public async IAsyncEnumerable<SpeechToTextResponseUpdate> GetStreamingTextAsync(Stream audioSpeechStream, SpeechToTextOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var r = await RunAsync(audioSpeechStream, options, cancellationToken).ConfigureAwait(false);
        // One update per ≤ 60 s segment, in order.
        foreach (var s in r.Segments)
            yield return new SpeechToTextResponseUpdate(s) { ModelId = _modelId };
    }

    /// <inheritdoc/>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        if (serviceKey is not null) return null;
        if (serviceType == typeof(SpeechToTextClientMetadata)) return new SpeechToTextClientMetadata("Llama3.Multimodal", null, _modelId);
        if (serviceType.IsInstanceOfType(this)) return this;
        return serviceType.IsInstanceOfType(_model) ? _model : null;
    }

    /// <inheritdoc/>
    public void Dispose() => _gate.Dispose();
}

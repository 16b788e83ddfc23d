using System.Diagnostics;
using System.Text.Json;
using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech;

/// <summary>
/// Llama 3 with speech input (Llama 3 paper §8): the decoder (<c>language_model</c>, a <see cref="LlamaForCausalLM"/>),
/// the Conformer encoder and the adapter (<c>speech_model</c>). The adapter's outputs are spliced into the prompt's
/// embedding sequence between the speech start and end tokens, in the user turn; the system prompt selects the task:
/// <c>Repeat after me in {language}:</c> (ASR) or <c>Translate the following sentence into {language}:</c> (AST).
/// </summary>
public sealed class SpeechLanguageModel : nn.Module
{
#pragma warning disable IDE1006 // checkpoint key names
    /// <summary>The text decoder (keys <c>language_model.model.…</c>, <c>language_model.lm_head.…</c>).</summary>
    public readonly LlamaForCausalLM language_model;
    /// <summary>The speech encoder and adapter (keys <c>speech_model.encoder.…</c>, <c>speech_model.adapter.…</c>).</summary>
    public readonly SpeechModel speech_model;
#pragma warning restore IDE1006

    LogMelSpectrogram? _logMel;

    /// <summary>The configuration.</summary>
    public SpeechModelConfig Config { get; }
    /// <summary>The tokenizer.</summary>
    public Llama3Tokenizer Tokenizer { get; }
    /// <summary>Device of the weights.</summary>
    public Device Device { get; }
    /// <summary>Dtype of the weights (feature statistics and quantizer stay f32).</summary>
    public ScalarType DType { get; }
    /// <summary>Id of the token that opens the speech span.</summary>
    public int SpeechStartId { get; }
    /// <summary>Id of the token that closes the speech span.</summary>
    public int SpeechEndId { get; }

    SpeechLanguageModel(SpeechModelConfig config, Llama3Tokenizer tokenizer, Device device, ScalarType dtype) : base("SpeechLanguageModel")
    {
        Config = config.Validate();
        Tokenizer = tokenizer;
        Device = device; DType = dtype;
        SpeechStartId = SpecialId(tokenizer, config.SpeechStartToken);
        SpeechEndId = SpecialId(tokenizer, config.SpeechEndToken);
        foreach (int id in new[] { SpeechStartId, SpeechEndId })
            if (id >= config.Text.EmbeddingRows)
                throw new ConfigException($"speech token id {id} is outside the decoder's embedding ({config.Text.EmbeddingRows} rows).");
        language_model = LlamaForCausalLM.Create(config.Text, device, dtype);
        speech_model = new SpeechModel(config.Encoder, config.Adapter, device, dtype);
        RegisterComponents();
    }

    static int SpecialId(Llama3Tokenizer tok, string name)
    {
        try { return tok.SpecialId(name); }
        catch (ArgumentException e) { throw new ConfigException($"speech token '{name}' is not a special token of the tokenizer.", e); }
    }

    /// <summary>The ASR system prompt for <paramref name="language"/> (e.g. "English").</summary>
    public static string AsrPrompt(string language) => $"Repeat after me in {language}:";

    /// <summary>The AST system prompt for the target <paramref name="language"/>.</summary>
    public static string AstPrompt(string language) => $"Translate the following sentence into {language}:";

    /// <summary>
    /// A model with random weights (seeded) for the preset <paramref name="preset"/> (see <see cref="SpeechPresets"/>);
    /// on the meta device nothing is allocated, so parameter counts of the full sizes can be checked.
    /// </summary>
    public static SpeechLanguageModel Create(string preset, Device? device = null, ScalarType dtype = ScalarType.Float32, long seed = 0,
        Llama3Tokenizer? tokenizer = null) =>
        Create(SpeechPresets.Get(preset), device, dtype, seed, tokenizer);

    /// <summary>A model with random weights (seeded) for <paramref name="config"/>.</summary>
    public static SpeechLanguageModel Create(SpeechModelConfig config, Device? device = null, ScalarType dtype = ScalarType.Float32, long seed = 0,
        Llama3Tokenizer? tokenizer = null)
    {
        var m = new SpeechLanguageModel(config, tokenizer ?? Llama3Tokenizer.Default, device ?? CPU, dtype);
        if ((device ?? CPU).type != DeviceType.META)
        {
            m.language_model.InitializeWeights(seed);
            m.speech_model.encoder.InitializeWeights(seed + 1);
            WeightInit.Apply(m.speech_model.adapter, seed + 2);
        }
        return m;
    }

    /// <summary>
    /// A speech model around the text decoder <paramref name="text"/> (Llama 3 §8.1: the speech encoder and adapter are
    /// attached to a pretrained language model): the decoder's weights are copied, the Conformer encoder and adapter of
    /// <paramref name="preset"/> start fresh from <paramref name="seed"/> (as <see cref="SpeechModel.ForTextModel"/>), the
    /// adapter writing the decoder's width. On <paramref name="text"/>'s device and dtype; <paramref name="text"/> is left
    /// as it was. The tokenizer must have the speech span's special tokens inside the decoder's embedding.
    /// </summary>
    public static SpeechLanguageModel FromTextModel(LlamaForCausalLM text, SpeechModelConfig preset, long seed = 0, Llama3Tokenizer? tokenizer = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(preset);
        var m = new SpeechLanguageModel(preset.ForTextModel(text.Config), tokenizer ?? Llama3Tokenizer.Default, text.Device, text.DType);
        try
        {
            using (var noGrad = torch.no_grad())
            {
                var src = text.named_parameters().ToDictionary(p => p.name, p => p.parameter);
                foreach (var (name, p) in m.language_model.named_parameters())
                {
                    if (!src.TryGetValue(name, out var s) || !s.shape.SequenceEqual(p.shape))
                        throw new CheckpointFormatException($"the text model's '{name}' is missing or has another shape than the speech model's decoder needs.");
                    p.copy_(s);
                }
            }
            m.speech_model.encoder.InitializeWeights(seed + 1);
            WeightInit.Apply(m.speech_model.adapter, seed + 2);
            return m;
        }
        catch
        {
            m.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads a folder written by <see cref="Save"/>: <c>config.json</c> (<see cref="SpeechConfigJson"/>), safetensors
    /// (single file or sharded with an index), and <c>tokenizer.model</c>/<c>tokenizer.json</c> when present (else the
    /// built-in Llama 3 tokenizer). Loading is strict: every key must match.
    /// </summary>
    public static SpeechLanguageModel FromPretrained(string directory, Device? device = null, ScalarType dtype = ScalarType.Float32) =>
        FromPretrained(directory, new LoadOptions { Device = device, DType = dtype });

    /// <summary>
    /// Loads a folder with <paramref name="options"/>; <see cref="LoadOptions.Quantize"/> stores the language model's
    /// linear layers (and by default its embedding and head) as q8 while reading. The speech encoder and adapter keep
    /// <see cref="LoadOptions.DType"/>.
    /// </summary>
    public static SpeechLanguageModel FromPretrained(string directory, LoadOptions options)
    {
        using var quantization = QuantizationSettings.Use(options.QuantizationFor(directory));
        return Load(directory, options.Device, options.DType);
    }

    static SpeechLanguageModel Load(string directory, Device? device, ScalarType dtype)
    {
        string cfgPath = Path.Combine(directory, "config.json");
        if (!File.Exists(cfgPath)) throw new CheckpointFormatException($"{directory}: no config.json (a speech model folder needs one).");
        var config = SpeechConfigJson.Read(cfgPath);
        var tok = Llama3Tokenizer.FromModelDirectory(directory) ?? Llama3Tokenizer.Default;
        var m = new SpeechLanguageModel(config, tok, device ?? CPU, dtype);
        using var reader = CheckpointReader.Open(directory);
        StateLoader.Load(m, reader, ignoreUnexpected: k => config.Text.TieWordEmbeddings && k == "language_model.lm_head.weight", memoryMap: true);
        return m;
    }

    /// <summary>
    /// Writes <c>config.json</c> and the weights (safetensors, sharded above 5 GiB) to <paramref name="directory"/>
    /// atomically; <paramref name="dtype"/> converts the weights (feature statistics stay f32).
    /// </summary>
    public void Save(string directory, ScalarType? dtype = null)
    {
        Directory.CreateDirectory(directory);
        var tensors = QuantizedLayers.TensorsToWrite(this, n => n,
            (name, p) => name.Contains(".feature_norm.", StringComparison.Ordinal) ? p.dtype : dtype ?? p.dtype);
        SafeTensorsWriter.WriteSharded(directory, tensors, 5L << 30);
        string dtName = (dtype ?? DType) switch { ScalarType.BFloat16 => "bfloat16", ScalarType.Float16 => "float16", _ => "float32" };
        var cfg = SpeechConfigJson.ToJson(Config, dtName);
        if (language_model.Quantization is { } q && QuantizedLayers.Scales(this).Count > 0) cfg["quantization_config"] = q.ToJson();
        AtomicFile.WriteAllText(Path.Combine(directory, "config.json"), cfg.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>
    /// Loads only the speech encoder from a checkpoint folder that holds <c>speech_model.encoder.…</c> keys (e.g. a
    /// BEST-RQ pretraining checkpoint, <see cref="BestRqObjective.Save"/>) — the start of speech SFT. Other keys are ignored;
    /// every encoder key must be present.
    /// </summary>
    public void LoadEncoder(string directory)
    {
        using var reader = CheckpointReader.Open(directory);
        StateLoader.Load(speech_model.encoder, reader, keyFor: n => BestRqObjective.EncoderPrefix + n,
            ignoreUnexpected: k => !k.StartsWith(BestRqObjective.EncoderPrefix, StringComparison.Ordinal));
    }

    /// <summary>Total parameter count (works on the meta device).</summary>
    public long ParameterCount() => parameters().Sum(p => p.numel());

    /// <summary>
    /// The chat prompt for one utterance of <paramref name="speechFrames"/> adapter frames: system message
    /// <paramref name="systemPrompt"/>, a user message holding <c>start · speech · end</c>, then the assistant header.
    /// </summary>
    public SpeechPrompt BuildPrompt(string systemPrompt, int speechFrames)
    {
        if (speechFrames < 1) throw new ArgumentOutOfRangeException(nameof(speechFrames), $"speech span of {speechFrames} frames; need at least 1.");
        var chat = new ChatFormat(Tokenizer);
        var placeholder = Config.SpeechStartToken;
        var ids = chat.EncodeDialog(new[] { new ChatMessage("system", systemPrompt), new ChatMessage("user", placeholder) },
            addAssistantHeader: true, allowedSpecials: new Dictionary<string, int> { [placeholder] = SpeechStartId });
        int at = ids.IndexOf(SpeechStartId);
        var filler = Enumerable.Repeat(Tokenizer.PadId, speechFrames).Append(SpeechEndId);
        ids.InsertRange(at + 1, filler);
        return new SpeechPrompt(ids, at + 1, speechFrames);
    }

    /// <summary>
    /// The prompt's input embeddings [1, L, D] with <paramref name="speech"/> [1, N, D] (adapter outputs, N =
    /// <see cref="SpeechPrompt.SpeechLength"/>) in place of the filler positions.
    /// </summary>
    public Tensor SpliceSpeech(SpeechPrompt prompt, Tensor speech)
    {
        if (speech.dim() != 3 || speech.shape[0] != 1 || speech.shape[1] != prompt.SpeechLength || speech.shape[2] != Config.Text.HiddenSize)
            throw new ArgumentException($"speech embeddings must be [1, {prompt.SpeechLength}, {Config.Text.HiddenSize}], got [{string.Join(", ", speech.shape)}].");
        using var scope = NewDisposeScope();
        var ids = torch.tensor(prompt.Ids.Select(i => (long)i).ToArray(), new long[] { 1, prompt.Ids.Count }).to(Device);
        var emb = language_model.Embed(ids);                                          // [1, L, D]
        long l = prompt.Ids.Count;
        var parts = new[]
        {
            emb.narrow(1, 0, prompt.SpeechOffset),
            speech.to(emb.dtype, Device),
            emb.narrow(1, prompt.SpeechOffset + prompt.SpeechLength, l - prompt.SpeechOffset - prompt.SpeechLength),
        };
        return torch.cat(parts, 1).MoveToOuterDisposeScope();
    }

    /// <summary>Adapter outputs [1, N, D] for 16 kHz mono samples (one segment, ≤ 60 s recommended).</summary>
    public Tensor EncodeSpeech(float[] samples)
    {
        using var scope = NewDisposeScope();
        using var noGrad = torch.no_grad();
        var feats = LogMel.Compute(samples).unsqueeze(0);                               // [1, T, 80]
        var len = torch.tensor(new long[] { feats.shape[1] }, device: Device);
        var (e, _) = speech_model.Forward(feats, len);
        return e.MoveToOuterDisposeScope();
    }

    LogMelSpectrogram LogMel => _logMel ??= new LogMelSpectrogram(Device);

    /// <summary>Transcribes the audio file at <paramref name="path"/> (ASR prompt in <paramref name="language"/>).</summary>
    public SpeechResult Transcribe(string path, string language = "English", GenerationOptions? options = null) =>
        Run(path, AsrPrompt(language), options);

    /// <summary>Translates the speech at <paramref name="path"/> into <paramref name="targetLanguage"/> (AST prompt).</summary>
    public SpeechResult Translate(string path, string targetLanguage, GenerationOptions? options = null) =>
        Run(path, AstPrompt(targetLanguage), options);

    /// <summary>
    /// Runs the model on an audio file with any system prompt; long audio goes in ≤ 60 s segments. See
    /// <see cref="Run(float[], string, GenerationOptions?, Action{int}?, CancellationToken)"/> for
    /// <paramref name="onToken"/> and <paramref name="cancel"/>.
    /// </summary>
    public SpeechResult Run(string path, string systemPrompt, GenerationOptions? options = null, Action<int>? onToken = null, CancellationToken cancel = default)
    {
        var total = Stopwatch.StartNew();
        var samples = AudioLoader.Load(path);
        double load = total.Elapsed.TotalSeconds;
        var r = Run(samples, systemPrompt, options, onToken, cancel);
        return r with { LoadSeconds = load, TotalSeconds = total.Elapsed.TotalSeconds, FirstTokenSeconds = load + r.FirstTokenSeconds };
    }

    /// <summary>
    /// Runs the model on 16 kHz mono samples with any system prompt; long audio goes in ≤ 60 s segments.
    /// <paramref name="onToken"/> sees each generated id as it comes. <paramref name="cancel"/> is checked before each
    /// segment, between the encoder's layers and between decode steps; once it is set the run stops there and throws
    /// <see cref="OperationCanceledException"/>.
    /// </summary>
    public SpeechResult Run(float[] samples, string systemPrompt, GenerationOptions? options = null, Action<int>? onToken = null, CancellationToken cancel = default)
    {
        if (samples.Length < LogMelSpectrogram.Hop)
            throw new ArgumentException($"audio of {samples.Length} samples is shorter than one 10 ms frame.");
        var total = Stopwatch.StartNew();
        var gen = new TextGenerator(language_model, Tokenizer);
        var texts = new List<string>();
        double feat = 0, enc = 0, prefill = 0, decode = 0;
        double? first = null;
        int tokens = 0, steps = 0, promptTokens = 0;
        foreach (var seg in AudioLoader.Segments(samples))
        {
            if (seg.Length < LogMelSpectrogram.Hop) continue;
            cancel.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var sw = Stopwatch.StartNew();
            Tensor speech;
            using (torch.no_grad())
            {
                var feats = LogMel.Compute(seg).unsqueeze(0);
                feat += sw.Elapsed.TotalSeconds; sw.Restart();
                var (e, _) = speech_model.Forward(feats, torch.tensor(new long[] { feats.shape[1] }, device: Device), cancel);
                speech = e;
                enc += sw.Elapsed.TotalSeconds;
            }
            var prompt = BuildPrompt(systemPrompt, (int)speech.shape[1]);
            var emb = SpliceSpeech(prompt, speech);
            var res = gen.Generate(prompt.Ids, options, id =>
            {
                first ??= total.Elapsed.TotalSeconds;
                onToken?.Invoke(id);
            }, promptEmbeddings: emb, cancel: cancel);
            cancel.ThrowIfCancellationRequested();
            prefill += res.PrefillSeconds; decode += res.DecodeSeconds; tokens += res.Tokens.Count; steps += res.DecodeSteps;
            promptTokens += prompt.Ids.Count;
            texts.Add(res.Text.Trim());
        }
        return new SpeechResult
        {
            Text = string.Join(" ", texts.Where(t => t.Length > 0)),
            Segments = texts,
            AudioSeconds = samples.Length / (double)AudioLoader.SampleRate,
            FeatureSeconds = feat, EncoderSeconds = enc, PrefillSeconds = prefill, DecodeSeconds = decode,
            GeneratedTokens = tokens,
            PromptTokens = promptTokens,
            DecodeSteps = steps,
            TotalSeconds = total.Elapsed.TotalSeconds,
            FirstTokenSeconds = first ?? total.Elapsed.TotalSeconds,
        };
    }

    /// <summary>Disposes weights and the feature extractor.</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing) _logMel?.Dispose();
        base.Dispose(disposing);
    }
}

using System.Text.Json;
using Llama3.Multimodal.Speech;
using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// <c>speech-stage2</c>: speech SFT (Llama 3 paper §8.3): the pretrained encoder (from <c>speech.finetune.encoder_from</c>, a
/// <c>speech-stage1</c> checkpoint, statistics included) and the adapter train jointly with the decoder
/// (<c>model.init_from</c>) frozen, on ASR and AST audio manifests. Prompt (Llama 3 chat format): system
/// <c>Repeat after me in {language}:</c> (ASR) or <c>Translate the following sentence into {language}:</c> (AST), a user turn
/// holding <c>speech-start · adapter frames · speech-end</c>, then the assistant turn with the target text; the loss covers
/// the target text and its <c>&lt;|eot_id|&gt;</c> only. Defaults (8B): lr 1e-4, 650K updates of 512 utterances.
/// <c>model.init_from</c> may also be a folder this recipe wrote (continue training it: decoder, encoder and adapter load as saved).
/// </summary>
public sealed class SpeechSftRecipe : Recipe
{
    SpeechSftModel? _model;
    static SpeechFinetuneSection Finetune(TrainConfig c) => c.SpeechSettings.Finetune ?? throw new ConfigException("speech-stage2: the config has no speech.finetune section.");
    LogMelSpectrogram? _logMel;
    readonly object _melLock = new();
    Device _device = CPU;

    /// <inheritdoc/>
    public override string Name => "speech-stage2";
    /// <inheritdoc/>
    public override string Description => "Speech SFT: encoder + adapter trained with the decoder frozen on ASR/AST prompts; loss on the target text only.";
    /// <summary>The tokenizer of the run.</summary>
    public ITrainingTokenizer Tokenizer { get; private set; } = ByteTokenizer.Instance;
    /// <summary>The model being trained.</summary>
    public SpeechSftModel Slm => _model ?? throw new InvalidOperationException("call Setup first.");
    /// <inheritdoc/>
    public override nn.Module Model => Slm;
    /// <inheritdoc/>
    public override IReadOnlyList<string> DefaultTrainable => new[] { "encoder", "adapter" };


    /// <inheritdoc/>
    public override TrainConfig DefaultConfig() => new()
    {
        Command = "mm-train speech-stage2 --config configs/training/speech-stage2.json --out runs/speech-stage2",
        Recipe = Name,
        Tokenizer = "llama3",
        Model = new ModelSection { Preset = "llama3.1-8b", InitFrom = "checkpoints/text" },
        Data = new DataSection { Train = "asr_ast.jsonl", SeqLen = 2048 },
        Optim = new OptimSection { Lr = 1e-4, MinLr = 1e-6, WarmupSteps = 2000, TotalSteps = 650_000, Schedule = "cosine", WeightDecay = 0.01 },
        Batch = new BatchSection { Unit = "samples", Global = 512, Micro = 8 },
        Train = new LoopSection { SaveEvery = 5000 },
        Speech = new SpeechSection { Preset = "llama3.1-8b-speech", Finetune = new SpeechFinetuneSection { EncoderFrom = "runs/speech-stage1/final" } },
    };


    /// <inheritdoc/>
    public override void Setup(TrainConfig config, Device device, ScalarType dtype)
    {
        Config = config; _device = device;
        Tokenizer = Llama3TrainingTokenizer.Resolve(config.Tokenizer);
        _logMel = new LogMelSpectrogram();
        if (IsSpeechStage2Folder(config.Model.InitFrom))
        {
            // Continue a trained speech-stage2 model: its decoder, encoder and adapter as saved (its config.json decides
            // the shapes); speech.finetune.encoder_from, when also set, still replaces the encoder.
            _model = LoadModel(config.Model.InitFrom!, device, dtype);
            if (Finetune(config).EncoderFrom is { Length: > 0 } replaceWith) LoadEncoder(replaceWith);
            return;
        }
        // The speech module joins the decoder (Llama 3 §8.1); its adapter writes the decoder's width.
        var decoder = ModelConstruction.Decoder(config, Tokenizer, device, dtype);
        var preset = SpeechPresets.Get(config.SpeechSettings.Preset ?? "tiny-speech");
        _model = new SpeechSftModel(decoder, SpeechModel.ForTextModel(decoder, preset, config.Seed), preset.ForTextModel(decoder.Config));
        if (Finetune(config).EncoderFrom is { Length: > 0 } encoderFrom) LoadEncoder(encoderFrom);
    }

    /// <summary>Whether <paramref name="dir"/> is a folder written by this recipe (its <see cref="MediaTokens.InfoFile"/> names <c>speech-stage2</c>).</summary>
    static bool IsSpeechStage2Folder(string? dir) =>
        !string.IsNullOrEmpty(dir) && File.Exists(Path.Combine(dir, MediaTokens.InfoFile)) && MediaTokens.ReadInfo(dir).Recipe == "speech-stage2";

    /// <summary>Loads <c>speech_model.encoder.*</c> (statistics included) from a <c>speech-stage1</c> (or any speech) checkpoint, strictly for the encoder's keys.</summary>
    void LoadEncoder(string directory)
    {
        using var reader = CheckpointReader.Open(directory);
        var keys = Slm.speech_model.encoder.named_parameters().Select(p => "speech_model.encoder." + p.name).ToList();
        var missing = keys.Where(k => !reader.Contains(k)).ToList();
        if (missing.Count > 0)
            throw new CheckpointFormatException($"{directory}: not a speech encoder checkpoint for speech.preset; missing ({missing.Count}): {string.Join(", ", missing.Take(10))}.");
        StateLoader.Load(Slm.speech_model.encoder, reader, keyFor: n => "speech_model.encoder." + n, strict: false);
    }

    /// <summary>One prepared utterance: ids, labels, features and where its speech span sits.</summary>
    internal sealed record Item(long[] Ids, long[] Labels, Tensor Features, int Offset, int Span);

    /// <summary>The system prompt for a record: ASR in its language (default <c>speech.finetune.language</c>), or AST into its target language.</summary>
    public string SystemPrompt(AudioTextRecord r) => r.Task == "ast"
        ? SpeechLanguageModel.AstPrompt(r.Language!) : SpeechLanguageModel.AsrPrompt(r.Language ?? Finetune(Config).Language);

    /// <summary>Prompt ids (up to the assistant header) for <paramref name="spanFrames"/> adapter frames, and the span's offset.</summary>
    public static (List<int> Ids, int Offset) Prompt(ITrainingTokenizer t, string systemPrompt, int spanFrames)
    {
        var (start, end) = MediaTokens.SpeechTokens(t);
        var ids = new List<int> { t.BosId };
        ids.AddRange(ChatTokens.Header(t, "system"));
        ids.AddRange(t.Encode(systemPrompt));
        ids.Add(t.EotId);
        ids.AddRange(ChatTokens.Header(t, "user"));
        ids.Add(start);
        int offset = ids.Count;
        ids.AddRange(Enumerable.Repeat(t.PadId, spanFrames));
        ids.Add(end);
        ids.Add(t.EotId);
        ids.AddRange(ChatTokens.Header(t, "assistant"));
        return (ids, offset);
    }

    Item Prepare(AudioTextRecord r, bool train, long epoch, long index)
    {
        var samples = RecordMedia.Audio(r);
        var rates = Finetune(Config).SpeedPerturb;
        if (train && rates.Count > 0)
        {
            double rate = rates[Math.Min(rates.Count - 1, (int)(RecordStream<AudioTextRecord, Item>.Draw(Config.Seed, epoch, index) * rates.Count))];
            samples = SpeedPerturb(samples, rate);
        }
        Tensor f;
        lock (_melLock) f = _logMel!.Compute(samples);
        int span = (int)Slm.speech_model.OutputFrames(f.shape[0]);
        var (ids, offset) = Prompt(Tokenizer, SystemPrompt(r), span);
        int first = ids.Count;
        ids.AddRange(ChatTokens.Response(Tokenizer, r.Text));
        if (first >= Config.Data.SeqLen) throw new DataFormatException($"{r.Audio}: prompt of {first} tokens (speech span {span}) does not fit data.seq_len = {Config.Data.SeqLen}.");
        int len = Math.Min(ids.Count, Config.Data.SeqLen);
        var labels = new long[len];
        for (int i = 0; i < len; i++) labels[i] = i + 1 < len && i + 1 >= first ? ids[i + 1] : -100;
        return new Item(ids.Take(len).Select(i => (long)i).ToArray(), labels, f, offset, span);
    }

    /// <summary>Plays 16 kHz <paramref name="samples"/> at <paramref name="rate"/> × speed (tempo and pitch together, as sox
    /// <c>speed</c>): the samples are resampled as if they had been recorded at rate × 16 kHz.</summary>
    public static float[] SpeedPerturb(float[] samples, double rate) =>
        rate == 1.0 ? samples : Resampler.Resample(samples, (int)Math.Round(rate * AudioLoader.SampleRate), AudioLoader.SampleRate);

    /// <inheritdoc/>
    public override IBatchSource OpenData(bool eval, DataCursor start) =>
        OpenSamples<AudioTextRecord, Item>(eval, start, (p, skip) => (JsonlManifest.ReadAudioTexts(p, skip, out int n), n),
            ShardRecords.AudioText, (r, e, i) => Prepare(r, !eval, e, i), Collate);

    MicroBatch Collate(List<Item> items, int seqLen, DataCursor end)
    {
        var ids = Padding.Rows(items.Select(i => i.Ids).ToList(), Tokenizer.PadId, seqLen, out int len);
        var labels = Padding.Rows(items.Select(i => i.Labels).ToList(), -100, seqLen, out _);
        var b = Padding.Features(items.Select(i => i.Features).ToList(), end, items.Sum(i => i.Labels.Take(len).Count(l => l != -100)));
        b.Tensors["input_ids"] = ids;
        b.Tensors["labels"] = labels;
        b.Tensors["speech_offsets"] = torch.tensor(items.Select(i => (long)i.Offset).ToArray());
        b.Tensors["speech_spans"] = torch.tensor(items.Select(i => (long)i.Span).ToArray());
        return b;
    }

    /// <inheritdoc/>
    public override LossOutput Loss(MicroBatch batch)
    {
        using var scope = NewDisposeScope();
        var offsets = batch["speech_offsets"].data<long>().Select(x => (int)x).ToList();
        var spans = batch["speech_spans"].data<long>().Select(x => (int)x).ToList();
        var features = batch["features"].to(_device);
        if (Finetune(Config).SpecAugment && Slm.training)
            features = Llama3.Multimodal.Speech.SpecAugment.Apply(features, batch["lengths"], Slm.speech_model.encoder.feature_norm.mean.detach(), Rng);
        var emb = Slm.Splice(batch["input_ids"].to(_device), features, batch["lengths"].to(_device), offsets, spans);
        var logits = Slm.language_model.ForwardEmbeddings(emb);
        return new LossOutput(PreferenceLosses.CrossEntropySum(logits, batch["labels"].to(_device)).MoveToOuterDisposeScope());
    }

    /// <summary>Writes config.json (speech layout), the weights and <see cref="MediaTokens.InfoFile"/>.</summary>
    public override void SaveModel(string directory)
    {
        SafeTensorsWriter.Save(Path.Combine(directory, "model.safetensors"), Slm.named_parameters().Select(p => new KeyValuePair<string, Tensor>(p.name, p.parameter)));
        AtomicFile.WriteAllText(Path.Combine(directory, "config.json"),
            SpeechConfigJson.ToJson(Slm.Config, "float32").ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        MediaTokens.WriteInfo(directory, Name, Config);
    }

    /// <inheritdoc/>
    public override void LoadModel(string directory)
    {
        using var reader = CheckpointReader.Open(directory);
        StateLoader.Load(Slm, reader);
    }

    /// <summary>
    /// Loads a folder written by <see cref="SaveModel"/> for inference: the model and its training tokenizer.
    /// </summary>
    public static (SpeechSftModel Model, ITrainingTokenizer Tokenizer) LoadTrained(string directory, Device? device = null)
    {
        var (_, tok, _, _) = MediaTokens.ReadInfo(directory);
        return (LoadModel(directory, device ?? CPU, ScalarType.Float32), tok);
    }

    /// <summary>The model saved in <paramref name="directory"/> (its config.json decides the shapes), every weight loaded.</summary>
    static SpeechSftModel LoadModel(string directory, Device device, ScalarType dtype)
    {
        var cfg = SpeechConfigJson.Read(Path.Combine(directory, "config.json"));
        // A folder written by `mm quantize` holds q8 language-model weights: build the decoder for them.
        using var q = QuantizationSettings.Use(QuantizationSettings.FromConfig(Path.Combine(directory, "config.json")));
        var m = new SpeechSftModel(LlamaForCausalLM.Create(cfg.Text, device, dtype), cfg, 0, device, dtype);
        using var reader = CheckpointReader.Open(directory);
        StateLoader.Load(m, reader);
        return m;
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) { _model?.Dispose(); _logMel?.Dispose(); }
        base.Dispose(disposing);
    }
}

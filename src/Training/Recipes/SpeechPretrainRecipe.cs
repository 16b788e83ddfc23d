using Llama3.Multimodal.Speech;
using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// <c>speech-stage1</c>: BEST-RQ self-supervised pretraining of the Conformer encoder (Llama 3 paper §8.3) on unlabelled audio
/// (an audio manifest; transcripts, if present, are ignored). Before the first step the per-mel-bin mean and variance are
/// measured on the training audio (<c>speech.best_rq.stats_utterances</c> utterances, 0 = all) and stored in the encoder's frozen
/// <c>feature_norm</c>, so they are saved with every checkpoint. Utterances longer than <c>speech.max_audio_frames</c> are
/// cropped to a random window. Loss: the objective's mean cross-entropy of the codebooks over masked 40 ms frames,
/// averaged over utterances. Defaults: the paper's 500K steps of 2048 utterances; lr 1e-4 (not published: our choice).
/// </summary>
public sealed class SpeechPretrainRecipe : Recipe
{
    BestRqPretrainModel? _model;
    BestRqSection BestRq => Config.SpeechSettings.BestRq ?? throw new ConfigException($"{Name}: the config has no speech.best_rq section.");
    LogMelSpectrogram? _logMel;
    readonly object _melLock = new();
    Device _device = CPU;

    /// <inheritdoc/>
    public override string Name => "speech-stage1";
    /// <inheritdoc/>
    public override string Description => "BEST-RQ pretraining of the Conformer speech encoder on unlabelled audio (per-bin statistics measured first).";
    /// <summary>The encoder and objective being trained.</summary>
    public BestRqPretrainModel Pretrain => _model ?? throw new InvalidOperationException("call Setup first.");
    /// <inheritdoc/>
    public override nn.Module Model => Pretrain;
    /// <inheritdoc/>
    public override IReadOnlyList<string> DefaultTrainable => new[] { "encoder", "heads" };


    /// <inheritdoc/>
    public override TrainConfig DefaultConfig() => new()
    {
        Command = "mm-train speech-stage1 --config configs/training/speech-stage1.json --out runs/speech-stage1",
        Recipe = Name,
        Data = new DataSection { Train = "audio.jsonl", SeqLen = 6000 },
        Optim = new OptimSection { Lr = 1e-4, MinLr = 1e-6, WarmupSteps = 10_000, TotalSteps = 500_000, Schedule = "cosine", WeightDecay = 0.01 },
        Batch = new BatchSection { Unit = "samples", Global = 2048, Micro = 8 },
        Train = new LoopSection { SaveEvery = 5000 },
        Speech = new SpeechSection { Preset = "llama3.1-8b-speech", BestRq = new BestRqSection { StatsUtterances = 100_000 } },
    };


    /// <summary>The BEST-RQ settings of <paramref name="c"/> (Llama 3 paper §8.3 defaults; mask noise N(0, 0.1²) as in BEST-RQ).</summary>
    public static BestRqConfig Objective(TrainConfig c) => new()
    {
        MaskStartProbability = (c.SpeechSettings.BestRq ?? new BestRqSection()).MaskProbability, MaskSpan = (c.SpeechSettings.BestRq ?? new BestRqSection()).MaskSpan, NumCodebooks = (c.SpeechSettings.BestRq ?? new BestRqSection()).Codebooks,
        CodebookSize = (c.SpeechSettings.BestRq ?? new BestRqSection()).CodebookSize, QuantizerSeed = c.Seed,
    };

    /// <inheritdoc/>
    public override void Setup(TrainConfig config, Device device, ScalarType dtype)
    {
        Config = config; _device = device;
        var speech = SpeechPresets.Get(config.SpeechSettings.Preset ?? "tiny-speech");
        _logMel = new LogMelSpectrogram();
        _model = new BestRqPretrainModel(speech.Encoder, Objective(config), config.Seed, device, dtype);
        if (!string.IsNullOrEmpty(config.Model.InitFrom)) { LoadModel(config.Model.InitFrom); return; }
        FitStatistics();
    }

    /// <summary>Measures the per-bin mean/variance on the training audio and stores them in the encoder.</summary>
    void FitStatistics()
    {
        var records = FirstRecords(BestRq.StatsUtterances, (p, skip) => (JsonlManifest.ReadAudioTexts(p, skip, out int n), n), ShardRecords.AudioText);
        Pretrain.encoder.feature_norm.Fit(Batches(records));
        IEnumerable<(Tensor, Tensor)> Batches(IEnumerable<AudioTextRecord> rs)
        {
            foreach (var chunk in rs.Chunk(16))
            {
                var (f, l) = _logMel!.ComputeBatch(chunk.Select(RecordMedia.Audio).ToList());
                yield return (f, l);
                f.Dispose(); l.Dispose();
            }
        }
    }

    Tensor Features(AudioTextRecord r)
    {
        var samples = RecordMedia.Audio(r);
        lock (_melLock) return _logMel!.Compute(samples);
    }

    /// <inheritdoc/>
    public override IBatchSource OpenData(bool eval, DataCursor start) =>
        OpenSamples<AudioTextRecord, Tensor>(eval, start, (p, skip) => (JsonlManifest.ReadAudioTexts(p, skip, out int n), n),
            ShardRecords.AudioText, (r, _, _) => Features(r), Collate);

    MicroBatch Collate(List<Tensor> items, int seqLen, DataCursor end) => Padding.Features(items, end, items.Count);

    /// <summary>Crops utterances longer than <c>speech.max_audio_frames</c> to a random window (torch RNG, so resume is exact).</summary>
    (Tensor Features, Tensor Lengths) Cropped(MicroBatch batch)
    {
        var f = batch["features"];
        var lens = batch["lengths"].data<long>().ToArray();
        long max = Config.SpeechSettings.MaxAudioFrames;
        if (lens.All(l => l <= max)) return (f.alias(), batch["lengths"].alias());
        var rows = new List<Tensor>();
        for (int i = 0; i < lens.Length; i++) rows.Add(BestRqObjective.RandomCrop(f[i].narrow(0, 0, lens[i]), max));
        long t = rows.Max(r => r.shape[0]);
        var padded = torch.stack(rows.Select(r => nn.functional.pad(r, new long[] { 0, 0, 0, t - r.shape[0] })).ToArray());
        return (padded, torch.tensor(rows.Select(r => r.shape[0]).ToArray()));
    }

    /// <inheritdoc/>
    public override LossOutput Loss(MicroBatch batch)
    {
        using var scope = NewDisposeScope();
        var (f, l) = Cropped(batch);
        var r = Pretrain.best_rq.Loss(f.to(_device), l, Rng);
        long n = batch.Samples;
        var metrics = new Dictionary<string, double> { ["code_accuracy"] = r.Accuracy * n, ["masked_fraction"] = (double)r.MaskedFrames / Math.Max(1, r.TotalFrames) * n };
        using var count = n.ToScalar();
        return new LossOutput(r.Loss.mul(count).MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>Writes every parameter under <c>speech_model.</c> (encoder with statistics, quantizer, heads) and <see cref="MediaTokens.InfoFile"/>.</summary>
    public override void SaveModel(string directory)
    {
        SafeTensorsWriter.Save(Path.Combine(directory, "model.safetensors"),
            Pretrain.named_parameters().Select(p => new KeyValuePair<string, Tensor>(BestRqPretrainModel.KeyPrefix + p.name, p.parameter)));
        MediaTokens.WriteInfo(directory, Name, Config);
    }

    /// <inheritdoc/>
    public override void LoadModel(string directory)
    {
        using var reader = CheckpointReader.Open(directory);
        StateLoader.Load(Pretrain, reader, keyFor: n => BestRqPretrainModel.KeyPrefix + n);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) { _model?.Dispose(); _logMel?.Dispose(); }
        base.Dispose(disposing);
    }
}

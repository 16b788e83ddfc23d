using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// The loop shared by every recipe: gradient accumulation to the global batch (with the batch ramp), global-norm
/// clipping, AdamW with no decay on norms/biases/gates/embeddings, the lr schedule, evaluation every N steps, atomic
/// checkpoints (weights, moments, step, data position, RNG) with exact resume, metrics (JSONL, TensorBoard, PNG curves)
/// and progress reports (<see cref="TrainerOptions.Progress"/>). With <c>train.dtype = bf16</c> the model computes in bf16 while AdamW updates f32 master weights from
/// f32-accumulated gradients (explicit casts: TorchSharp has no autocast). Output folder: <c>config.json</c>, <c>metrics.jsonl</c>, <c>tensorboard/</c>, <c>curves.png</c>,
/// <c>checkpoints/step-N/</c>, optionally <c>averaged/</c>.
/// </summary>
public sealed class Trainer : IDisposable
{
    readonly TrainConfig _cfg;
    readonly string _out;
    readonly TrainerOptions _opt;
    readonly LrSchedule _schedule;
    readonly CheckpointStore _store;
    readonly List<(string Name, Tensor Param)> _trainable;
    // bf16 mode: f32 master copies of the trainable parameters (what AdamW updates) and f32 gradient accumulators.
    readonly List<Tensor>? _master;
    readonly Distributed.ICollectives _coll;
    long _tokens, _samples;
    double _allReduceSeconds;
    long _allReduceBytes;
    DataCursor _cursor = DataCursor.Start;

    /// <summary>The recipe being run (its model holds the weights).</summary>
    public Recipe Recipe { get; }
    /// <summary>The optimizer.</summary>
    public AdamW Optimizer { get; }
    /// <summary>Optimizer steps done.</summary>
    public long Step { get; private set; }
    /// <summary>The checkpoint file of the recipe's <see cref="Recipe.AuxiliaryParameters"/> (absent when it has none).</summary>
    public const string AuxiliaryFile = "auxiliary.safetensors";

    /// <summary>Names of the trained parameters.</summary>
    public IReadOnlyList<string> TrainableNames => _trainable.Select(t => t.Name).ToList();

    /// <summary>Sets up <paramref name="recipe"/> with <paramref name="config"/> (seeded) and the optimizer; writes <c>OUT/config.json</c>.</summary>
    public Trainer(Recipe recipe, TrainConfig config, string outDir, TrainerOptions? options = null)
    {
        _cfg = config; _out = Path.GetFullPath(outDir); _opt = options ?? new TrainerOptions();
        _coll = _opt.Collectives ?? new Distributed.SingleProcess();
        // Only rank 0 reports and writes.
        if (_coll.Rank != 0) _opt = _opt with { Progress = null, TensorBoard = false, Plot = false };
        Recipe = recipe;
        Recipe.DataRank = _coll.Rank; Recipe.DataWorld = _coll.WorldSize;
        if (config.Recipe.Length > 0 && RecipeRegistry.Names.Contains(config.Recipe) && config.Recipe != recipe.Name)
            throw new ConfigException($"config is for recipe '{config.Recipe}', not '{recipe.Name}'.");
        var device = DeviceSpec.Parse(config.Train.Device);
        // With the layers split over several devices, inputs go to the first (where the embedding lives).
        if (config.Train.Devices is { } split)
            device = split.Trim() == "auto" ? (torch.cuda.is_available() ? new Device(DeviceType.CUDA, 0) : device) : ConfigLoader.DeviceList(split)[0];
        bool mixed = config.Train.Dtype == "bf16";
        torch.manual_seed(config.Seed);
        recipe.Rng.Dispose();
        recipe.Rng = new Generator((ulong)config.Seed, CPU);
        recipe.Setup(config, device, mixed ? ScalarType.BFloat16 : ScalarType.Float32);
        _trainable = SelectTrainable();
        // A run started from another run's checkpoint continues that run's auxiliary heads (a resume overwrites them).
        if (!string.IsNullOrEmpty(config.Model.InitFrom) && Directory.Exists(config.Model.InitFrom))
            LoadAuxiliary(config.Model.InitFrom, partial: true);
        // Every rank starts from rank 0's weights (random inits may differ by rank).
        Distributed.DataParallel.BroadcastParameters(recipe.Model.parameters().Concat(recipe.AuxiliaryParameters.Select(a => a.Param)), _coll);
        if (mixed)
        {
            // The model computes in bf16; AdamW updates f32 masters whose values are copied back after each step.
            using var noGrad = torch.no_grad();
            _master = _trainable.Select(t => t.Param.detach().to_type(ScalarType.Float32).clone().requires_grad_(true)).ToList();
        }
        var updated = _master is null ? _trainable : _trainable.Select((t, i) => (t.Name, _master[i])).ToList();
        Optimizer = new AdamW(updated.Select(t => (t.Item1, t.Item2, AdamW.DecaysByName(t.Item1, t.Item2))),
            config.Optim.Beta1, config.Optim.Beta2, config.Optim.Eps, config.Optim.WeightDecay);
        if (_opt.ShardOptimizerState && _coll.WorldSize > 1) Optimizer.Owns = i => i % _coll.WorldSize == _coll.Rank;
        _schedule = LrSchedule.From(config.Optim);
        _store = new CheckpointStore(Path.Combine(_out, "checkpoints"), config.Train.KeepLast);
        if (_coll.Rank == 0) AtomicFile.WriteAllText(Path.Combine(_out, "config.json"), ConfigLoader.ToJson(config));
    }

    List<(string, Tensor)> SelectTrainable()
    {
        var names = Recipe.Model.named_parameters().Select(p => p.name).ToList();
        // The components the model declares are the one vocabulary of train.trainable/freeze besides parameter prefixes.
        var components = (Recipe.Model as IComponentModel)?.Components ?? new Dictionary<string, IReadOnlyList<string>>();
        List<string> Resolve(IEnumerable<string> entries, string key)
        {
            var prefixes = new List<string>();
            foreach (var e in entries)
            {
                var ps = components.TryGetValue(e, out var c) ? c : new[] { e };
                foreach (var p in ps)
                {
                    if (!names.Any(n => Matches(n, p)))
                        throw new ConfigException($"train.{key}: '{e}' matches no parameter (the model's components: {string.Join(", ", components.Keys)}; or a parameter-name prefix such as '{names.FirstOrDefault()}').");
                    prefixes.Add(p);
                }
            }
            return prefixes;
        }
        var only = _cfg.Train.Trainable.Count > 0 ? Resolve(_cfg.Train.Trainable, "trainable")
            : Recipe.DefaultTrainable.Count > 0 ? Resolve(Recipe.DefaultTrainable, "trainable") : null;
        var frozen = Resolve(_cfg.Train.Freeze, "freeze");
        var list = new List<(string, Tensor)>();
        foreach (var (name, p) in Recipe.Model.named_parameters())
        {
            bool train = (only is null || only.Any(o => Matches(name, o))) && !frozen.Any(f => Matches(name, f));
            p.requires_grad_(train);
            if (train) list.Add((name, p));
        }
        if (list.Count == 0) throw new ConfigException("train.trainable/freeze leave no parameter to train.");
        foreach (var (name, p) in Recipe.AuxiliaryParameters)
        {
            if (names.Contains(name)) throw new InvalidOperationException($"{Recipe.Name}: auxiliary parameter '{name}' clashes with a model parameter.");
            p.requires_grad_(true);
            list.Add((name, p));
        }
        return list;
    }

    static bool Matches(string name, string prefix) => name == prefix || name.StartsWith(prefix + ".", StringComparison.Ordinal);

    /// <summary>
    /// Trains until <c>train.max_steps</c> (or <c>optim.total_steps</c>). With <paramref name="resume"/>, continues from
    /// the newest checkpoint in <c>OUT/checkpoints</c> exactly where it stopped.
    /// </summary>
    public TrainResult Run(bool resume = false, CancellationToken cancel = default)
    {
        string? last = null;
        if (resume) { last = _store.Latest(); if (last is not null) LoadCheckpoint(last); }
        long maxSteps = Math.Min(_cfg.Train.MaxSteps ?? _cfg.Optim.TotalSteps, _cfg.Optim.TotalSteps);
        var history = new List<(long, double, double)>();
        var evals = new List<(long, double)>();
        // Only rank 0 reads and rewrites metrics.jsonl: another rank replacing the file would cut rank 0's log off.
        var plotHistory = _coll.Rank == 0 ? ReadPlotHistory() : new List<(long, double, double)>();
        using var metrics = _coll.Rank == 0 ? new MetricsLog(Path.Combine(_out, "metrics.jsonl")) : null;
        using var tb = _opt.TensorBoard ? new TensorBoardWriter(Path.Combine(_out, "tensorboard")) : null;
        using var progress = new ProgressScope(_opt.Progress, Step, maxSteps);
        if (Optimizer.Owns is not null)
        {
            int owned = Enumerable.Range(0, Optimizer.Parameters.Count).Count(Optimizer.Owns);
            progress.Message($"ZeRO-1: rank 0 keeps AdamW moments for {owned} of {Optimizer.Parameters.Count} parameter tensors.");
        }
        if (resume) progress.Message(last is null ? $"no checkpoint in {_store.Root}; starting fresh." : $"resumed from {last} at step {Step}.");
        using var computing = BackgroundWork.Compute();
        using var source = Recipe.OpenData(false, _cursor);
        if (Recipe.SkippedRecords > 0) progress.Message($"skipped {Recipe.SkippedRecords} bad records.");
        long skippedSeen = 0;
        var clock = Stopwatch.StartNew();
        long startStep = Step, startTokens = _tokens;
        bool savedAtEnd = false;
        while (Step < maxSteps && !cancel.IsCancellationRequested)
        {
            var (global, seqLen) = BatchPlan.At(_cfg, _tokens);
            int k = BatchPlan.Accumulation(_cfg, global, seqLen);
            var (loss, gradNorm, extra, tokens) = TrainStep(source, k, seqLen);
            double lr = _schedule.At(Step);
            Optimizer.Step(lr);
            if (Optimizer.Owns is not null)
            {
                // ZeRO-1: each parameter was updated by its owner only; share the result.
                var updated = Optimizer.Parameters;
                using var noGrad = torch.no_grad();
                for (int i = 0; i < updated.Count; i++) _coll.Broadcast(updated[i], i % _coll.WorldSize);
            }
            if (_master is not null) CopyMastersToModel();
            Step++;
            Recipe.AfterStep(Step);
            history.Add((Step, loss, lr)); plotHistory.Add((Step, loss, lr));
            double secs = clock.Elapsed.TotalSeconds;
            double tps = (_tokens - startTokens) / Math.Max(secs, 1e-9);
            var eta = TimeSpan.FromSeconds(Math.Min(secs / (Step - startStep) * (maxSteps - Step), TimeSpan.MaxValue.TotalSeconds / 2));
            var line = new JsonObject { ["step"] = Step, ["loss"] = loss, ["lr"] = lr, ["grad_norm"] = gradNorm, ["tokens"] = _tokens,
                ["samples"] = _samples, ["micro_batches"] = k, ["seq_len"] = seqLen, ["tokens_per_s"] = tps, ["elapsed_s"] = secs };
            if (_coll.WorldSize > 1) { line["allreduce_s"] = _allReduceSeconds; line["allreduce_bytes"] = _allReduceBytes; }
            foreach (var (key, v) in extra) line[key] = v;
            if (source.Skipped > skippedSeen)
            {
                skippedSeen = source.Skipped;
                line["skipped_records"] = skippedSeen;
                progress.Message($"skipped {skippedSeen} bad record(s) so far; the last: {source.LastSkip}");
            }
            metrics?.Write(line);
            if (tb is not null)
            {
                tb.AddScalar("train/loss", loss, Step); tb.AddScalar("train/lr", lr, Step); tb.AddScalar("train/grad_norm", gradNorm, Step);
                tb.AddScalar("train/tokens_per_s", tps, Step);
                foreach (var (key, v) in extra) tb.AddScalar("train/" + key, v, Step);
            }
            progress.Report(new TrainProgress
            {
                Step = Step, TotalSteps = maxSteps, Loss = loss, LearningRate = lr, TokensPerSecond = tps, Eta = eta,
                IsLogStep = Step % Math.Max(1, _cfg.Train.LogEvery) == 0 || Step == maxSteps,
            });
            if (_cfg.Train.EvalEvery > 0 && Step % _cfg.Train.EvalEvery == 0 && !string.IsNullOrEmpty(_cfg.Data.Eval) && _coll.Rank == 0)
            {
                double ev = Evaluate(seqLen);
                evals.Add((Step, ev));
                metrics?.Write(new JsonObject { ["step"] = Step, ["eval_loss"] = ev });
                tb?.AddScalar("eval/loss", ev, Step);
                progress.Message($"step {Step}: eval loss {ev:F4}");
            }
            if (_cfg.Train.SaveEvery > 0 && Step % _cfg.Train.SaveEvery == 0 || Step == maxSteps)
            {
                last = SaveCheckpoint();
                savedAtEnd = Step == maxSteps;
                tb?.Flush();
                if (_opt.Plot) CurvePlot.Write(Path.Combine(_out, "curves.png"), plotHistory, evals, $"{Recipe.Name}");
            }
        }
        if (!savedAtEnd && Step > startStep) last = SaveCheckpoint();
        if (_opt.Plot && plotHistory.Count > 0) CurvePlot.Write(Path.Combine(_out, "curves.png"), plotHistory, evals, $"{Recipe.Name}");
        if (_cfg.Train.AverageLast > 1 && _coll.Rank == 0)
        {
            var ckpts = _store.List().TakeLast(_cfg.Train.AverageLast).ToList();
            CheckpointAverager.Average(ckpts, Path.Combine(_out, "averaged"));
            progress.Message($"averaged {ckpts.Count} checkpoints into {Path.Combine(_out, "averaged")}.");
        }
        return new TrainResult(Step, history, evals, last, _tokens);
    }

    /// <summary>One optimizer step's forward/backward over <paramref name="k"/> micro-batches (gradients left in place).</summary>
    internal (double Loss, double GradNorm, Dictionary<string, double> Metrics, long Tokens) TrainStep(IBatchSource source, int k, int seqLen)
    {
        // Every rank reads the same seeded stream (so the data position is global and resume works for any world size)
        // and trains micro-batch i when i mod world = rank: disjoint shards of each global batch.
        // A rank-local (sharded) source reads only this rank's micro-batches; the others are placeholders, and the counts
        // and the data cursor are summed over the ranks.
        var batches = new List<MicroBatch>(k);
        for (int i = 0; i < k; i++) batches.Add(source.Next(seqLen));
        bool local = source.RankLocal && _coll.WorldSize > 1;
        try
        {
            double elements = batches.Sum(b => b.LossElements);
            if (local) elements = _coll.AllReduceSum(elements);
            double total = Math.Max(1, elements);
            using var totalScalar = total.ToScalar();
            var mine = source.RankLocal ? batches.Where(b => !b.Remote).ToList() : batches.Where((_, i) => i % _coll.WorldSize == _coll.Rank).ToList();
            Recipe.Model.zero_grad();
            foreach (var (_, p) in Recipe.AuxiliaryParameters) p.grad?.zero_();
            Recipe.Model.train();
            var acc = _master?.Select(m => torch.zeros(m.shape, ScalarType.Float32, m.device)).ToList();
            double lossSum = 0;
            var extra = new Dictionary<string, double>();
            foreach (var b in mine)
            {
                using var scope = NewDisposeScope();
                var o = Recipe.Loss(b);
                using (var l = o.Sum.div(totalScalar))
                using (BackgroundWork.Quiet()) l.backward();
                if (acc is not null) AccumulateInF32(acc);
                lossSum += o.Sum.item<float>();
                foreach (var (key, v) in o.Metrics ?? new Dictionary<string, double>()) extra[key] = extra.GetValueOrDefault(key) + v;
            }
            if (acc is not null) for (int i = 0; i < acc.Count; i++) { _master![i].grad?.Dispose(); _master[i].grad = acc[i]; }
            if (_coll.WorldSize > 1)
            {
                // Each rank's loss was divided by the global element count, so the sum over ranks is the full-batch gradient.
                var reduced = (_master ?? _trainable.Select(t => t.Param)).ToList();
                var sw = Stopwatch.StartNew();
                Distributed.DataParallel.SumGradients(reduced, _coll);
                _allReduceSeconds = sw.Elapsed.TotalSeconds;
                _allReduceBytes = reduced.Where(p => p.grad is not null).Sum(p => p.grad!.numel() * p.grad!.element_size());
                lossSum = _coll.AllReduceSum(lossSum);
            }
            double norm = GradientClipping.ClipGlobalNorm(_master ?? _trainable.Select(t => t.Param), _cfg.Optim.GradClip);
            _cursor = local ? MergeCursor(batches[^1].End) : batches[^1].End;
            long tokens = batches.Sum(b => b.Tokens), samples = batches.Sum(b => b.Samples);
            if (local) { tokens = (long)_coll.AllReduceSum(tokens); samples = (long)_coll.AllReduceSum(samples); }
            _tokens += tokens; _samples += samples;
            return (lossSum / total, norm, extra.ToDictionary(kv => kv.Key, kv => kv.Value / total), tokens);
        }
        finally { foreach (var b in batches) b.Dispose(); }
    }

    /// <summary>
    /// A sharded cursor with each reader's state from the rank that owns it (the others hold zeros there); its epoch is
    /// the lowest of the ranks' epochs (each the lowest of its readers').
    /// </summary>
    DataCursor MergeCursor(DataCursor mine)
    {
        if (mine.Readers is not { } readers) return mine;
        var values = new double[readers.Length + _coll.WorldSize];
        for (int i = 0; i < readers.Length; i++) values[i] = readers[i];
        values[readers.Length + _coll.Rank] = mine.Epoch;
        using var t = torch.tensor(values, ScalarType.Float64);
        _coll.AllReduceSum(t);
        var sums = t.data<double>().Select(v => (long)Math.Round(v)).ToArray();
        return new DataCursor(sums.Skip(readers.Length).Min(), mine.Index, mine.Offset) { Readers = sums.Take(readers.Length).ToArray() };
    }

    void AccumulateInF32(List<Tensor> acc)
    {
        using var noGrad = torch.no_grad();
        for (int i = 0; i < acc.Count; i++)
        {
            var g = _trainable[i].Param.grad;
            if (g is null) continue;
            acc[i].add_(g.to_type(ScalarType.Float32), Scalars.One);
            g.zero_();
        }
    }

    void CopyMastersToModel()
    {
        using var noGrad = torch.no_grad();
        for (int i = 0; i < _master!.Count; i++) _trainable[i].Param.copy_(_master[i]);
    }

    /// <summary>Mean loss over <c>train.eval_batches</c> micro-batches of the evaluation manifest (from its start, unshuffled).</summary>
    public double Evaluate(int? seqLen = null)
    {
        using var source = Recipe.OpenData(true, DataCursor.Start);
        using var noGrad = torch.no_grad();
        Recipe.Model.eval();
        double sum = 0, n = 0;
        for (int i = 0; i < Math.Max(1, _cfg.Train.EvalBatches); i++)
        {
            using var b = source.Next(seqLen ?? _cfg.Data.SeqLen);
            using var scope = NewDisposeScope();
            sum += Recipe.Loss(b).Sum.item<float>();
            n += b.LossElements;
        }
        Recipe.Model.train();
        return sum / Math.Max(1, n);
    }

    string SaveCheckpoint()
    {
        // A sharded optimizer is gathered first, so checkpoints always hold the full state (resumable at any world size).
        if (Optimizer.Owns is not null) Optimizer.GatherSharded(_coll, i => i % _coll.WorldSize);
        // Rank 0 writes; the others wait so that nobody reads a checkpoint before it is complete.
        string path = _coll.Rank == 0 ? WriteCheckpoint() : Path.Combine(_store.Root, CheckpointStore.NameOf(Step));
        _coll.Barrier();
        Optimizer.DropUnowned();
        return path;
    }

    string WriteCheckpoint() => _store.Save(Step, dir =>
    {
        Recipe.SaveModel(dir);
        if (Recipe.AuxiliaryParameters.Count > 0)
            SafeTensorsWriter.Save(Path.Combine(dir, AuxiliaryFile), Recipe.AuxiliaryParameters.Select(a => new KeyValuePair<string, Tensor>(a.Name, a.Param)));
        SafeTensorsWriter.Save(Path.Combine(dir, "optimizer.safetensors"), Optimizer.StateTensors());
        if (_master is not null)
            SafeTensorsWriter.Save(Path.Combine(dir, "master.safetensors"), _trainable.Select((t, i) => new KeyValuePair<string, Tensor>(t.Name, _master[i])));
        using var rng = torch.get_rng_state();
        var state = new JsonObject
        {
            ["recipe"] = Recipe.Name,
            ["step"] = Step,
            ["tokens_seen"] = _tokens,
            ["samples_seen"] = _samples,
            ["data_cursor"] = CursorJson(_cursor),
            ["optimizer_steps"] = new JsonObject(Optimizer.StepCounts().Select(kv => new KeyValuePair<string, JsonNode?>(kv.Key, kv.Value))),
            ["torch_rng_state"] = Convert.ToBase64String(rng.bytes.ToArray()),
        };
        using (var own = Recipe.Rng.get_state()) state["recipe_rng_state"] = Convert.ToBase64String(own.bytes.ToArray());
        AtomicFile.WriteAllText(Path.Combine(dir, "trainer_state.json"), state.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }, _opt.BeforeCheckpointCommit);

    // A checkpoint without the file (written before the recipe had auxiliary parameters) leaves them as initialised.
    // With partial (the file of model.init_from, whose run may have had other heads), names it lacks stay initialised too.
    void LoadAuxiliary(string dir, bool partial = false)
    {
        string path = Path.Combine(dir, AuxiliaryFile);
        if (Recipe.AuxiliaryParameters.Count == 0 || !File.Exists(path)) return;
        using var file = SafeTensorsFile.Open(path);
        using var noGrad = torch.no_grad();
        foreach (var (name, p) in Recipe.AuxiliaryParameters)
        {
            if (!file.Entries.ContainsKey(name))
            {
                if (partial) continue;
                throw new CheckpointFormatException($"{path}: no '{name}' (auxiliary parameter of {Recipe.Name}).");
            }
            using var t = file.Read(name);
            if (!t.shape.SequenceEqual(p.shape))
                throw new CheckpointFormatException($"{path}: '{name}' has shape [{string.Join(", ", t.shape)}], {Recipe.Name} needs [{string.Join(", ", p.shape)}].");
            p.copy_(t);
        }
    }

    void LoadCheckpoint(string dir)
    {
        string statePath = Path.Combine(dir, "trainer_state.json");
        JsonObject s;
        try { s = LlamaConfigJson.ReadObject(statePath); }
        catch (ConfigException e) { throw new CheckpointFormatException(e.Message, e); }
        if (s["recipe"]?.GetValue<string>() is { } r && r != Recipe.Name) throw new CheckpointFormatException($"{statePath}: checkpoint of recipe '{r}', not '{Recipe.Name}'.");
        Recipe.LoadModel(dir);
        LoadAuxiliary(dir);
        var steps = (s["optimizer_steps"] as JsonObject ?? new JsonObject()).ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<long>());
        using (var opt = SafeTensorsFile.Open(Path.Combine(dir, "optimizer.safetensors")))
            Optimizer.LoadState(name => opt.Entries.ContainsKey(name) ? opt.Read(name) : null, steps);
        if (_master is not null)
        {
            string mp = Path.Combine(dir, "master.safetensors");
            using var noGrad = torch.no_grad();
            using var mf = File.Exists(mp) ? SafeTensorsFile.Open(mp) : null;
            for (int i = 0; i < _master.Count; i++)
            {
                if (mf is not null && mf.Entries.ContainsKey(_trainable[i].Name)) { using var t = mf.Read(_trainable[i].Name); _master[i].copy_(t); }
                else _master[i].copy_(_trainable[i].Param);
            }
        }
        Optimizer.DropUnowned();
        Step = s["step"]!.GetValue<long>();
        _tokens = s["tokens_seen"]!.GetValue<long>();
        _samples = s["samples_seen"]!.GetValue<long>();
        var c = s["data_cursor"]!.AsObject();
        _cursor = new DataCursor(c["epoch"]!.GetValue<long>(), c["index"]!.GetValue<long>(), c["offset"]!.GetValue<long>())
        {
            Readers = c["readers"] is JsonArray ra ? ra.Select(v => v!.GetValue<long>()).ToArray() : null,
        };
        byte[] rng = Convert.FromBase64String(s["torch_rng_state"]!.GetValue<string>());
        using var rt = torch.tensor(rng, ScalarType.Byte);
        torch.set_rng_state(rt);
        if (s["recipe_rng_state"]?.GetValue<string>() is { } own)
        {
            using var ot = torch.tensor(Convert.FromBase64String(own), ScalarType.Byte);
            Recipe.Rng.set_state(ot);
        }
    }

    static JsonObject CursorJson(DataCursor c)
    {
        var o = new JsonObject { ["epoch"] = c.Epoch, ["index"] = c.Index, ["offset"] = c.Offset };
        if (c.Readers is { } r) o["readers"] = new JsonArray(r.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray());
        return o;
    }

    List<(long, double, double)> ReadPlotHistory()
    {
        // The curve covers the whole run, also across resumes: earlier steps come from metrics.jsonl.
        var list = new List<(long, double, double)>();
        string path = Path.Combine(_out, "metrics.jsonl");
        if (!File.Exists(path)) return list;
        // Lines past the checkpoint we resume from belong to steps that are run again: drop them.
        var keep = new List<string>();
        foreach (var line in File.ReadLines(path))
        {
            try
            {
                if (JsonNode.Parse(line) is not JsonObject o || o["step"] is null || o["step"]!.GetValue<long>() > Step) continue;
                keep.Add(line);
                if (o["loss"] is not null) list.Add((o["step"]!.GetValue<long>(), o["loss"]!.GetValue<double>(), o["lr"]!.GetValue<double>()));
            }
            catch (JsonException) { }
        }
        AtomicFile.WriteAllText(path, string.Concat(keep.Select(l => l + "\n")));
        return list;
    }

    /// <summary>Frees the optimizer state and the recipe's models.</summary>
    public void Dispose()
    {
        Optimizer.Dispose();
        foreach (var m in _master ?? new List<Tensor>()) m.Dispose();
        Recipe.Dispose();
    }

    // Starts and finishes the reporter around a run; null reporter = silent.
    sealed class ProgressScope : IDisposable
    {
        readonly ITrainingProgress? _p;
        public ProgressScope(ITrainingProgress? p, long start, long total) { _p = p; _p?.Start(start, total); }
        public void Report(TrainProgress progress) => _p?.Report(progress);
        public void Message(string text) => _p?.Message(text);
        public void Dispose() => _p?.Finish();
    }
}

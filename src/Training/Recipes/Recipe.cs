using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// A training recipe = its default config (the paper's numbers), which of the model's components train, and the loss. The shared
/// <see cref="Trainer"/> runs the loop (accumulation, clipping, AdamW, schedule, checkpoints, metrics). A new recipe is
/// one small class: override <see cref="DefaultConfig"/>, build the model in <see cref="Setup"/>, open its data in
/// <see cref="OpenData"/> and compute the summed loss of a micro-batch in <see cref="Loss"/>; register it in
/// <see cref="RecipeRegistry"/>.
/// </summary>
public abstract class Recipe : IDisposable
{
    /// <summary>The subcommand name, e.g. <c>text-pretrain</c>.</summary>
    public abstract string Name { get; }
    /// <summary>One-line description for <c>mm-train --help</c>.</summary>
    public abstract string Description { get; }
    /// <summary>Full defaults of this recipe (paper scale); config files scale them down.</summary>
    public abstract TrainConfig DefaultConfig();

    /// <summary>What trains when the config names nothing (<c>train.trainable</c> empty): components the model declares
    /// (<see cref="Text.IComponentModel.Components"/>) or parameter-name prefixes; empty = all parameters.</summary>
    public virtual IReadOnlyList<string> DefaultTrainable => Array.Empty<string>();

    /// <summary>The config in force (set by <see cref="Setup"/>).</summary>
    public TrainConfig Config { get; protected set; } = new();
    /// <summary>
    /// The run's own random stream for per-step randomness (masks, noise), seeded from the config and saved in every
    /// checkpoint by the trainer. Recipes draw from it instead of libtorch's process-wide generator, so another model
    /// or run in the same process cannot change their sequence.
    /// </summary>
    public Generator Rng { get; set; } = new(0, CPU);
    /// <summary>The module whose parameters are trained and checkpointed.</summary>
    public abstract nn.Module Model { get; }

    /// <summary>
    /// Parameters trained beside <see cref="Model"/>'s that are not part of the model (e.g. an auxiliary read-out head of a
    /// training loss): always trained, with names that must not clash with the model's. The trainer keeps them in each
    /// checkpoint (<see cref="Trainer.AuxiliaryFile"/>, not in the model's files) so that a run resumes exactly. Empty by default.
    /// </summary>
    public virtual IReadOnlyList<(string Name, Tensor Param)> AuxiliaryParameters => Array.Empty<(string, Tensor)>();

    /// <summary>Builds the model (and any frozen reference) on <paramref name="device"/> in <paramref name="dtype"/>.</summary>
    public abstract void Setup(TrainConfig config, Device device, ScalarType dtype);

    /// <summary>Opens the training (or evaluation) stream at <paramref name="start"/>.</summary>
    public abstract IBatchSource OpenData(bool eval, DataCursor start);

    /// <summary>The summed (not averaged) loss of a micro-batch and summed metrics; the trainer divides by the step's elements.</summary>
    public abstract LossOutput Loss(MicroBatch batch);

    /// <summary>
    /// Called by the trainer after each optimizer step (<paramref name="step"/> = the steps done so far, the new weights in
    /// place), e.g. to update a reference model from the policy. Does nothing by default.
    /// </summary>
    public virtual void AfterStep(long step) { }

    /// <summary>Writes the model weights (and its config) to <paramref name="directory"/>.</summary>
    public virtual void SaveModel(string directory) =>
        Text.SafeTensorsWriter.Save(Path.Combine(directory, "model.safetensors"), Model.named_parameters().Select(p => new KeyValuePair<string, Tensor>(p.name, p.parameter)));

    /// <summary>Loads weights written by <see cref="SaveModel"/> (strict).</summary>
    public virtual void LoadModel(string directory)
    {
        using var reader = Text.CheckpointReader.Open(directory);
        Text.StateLoader.Load(Model, reader);
    }

    /// <summary>This process's data-parallel rank (set by the trainer): a sharded source reads only this rank's readers.</summary>
    public int DataRank { get; set; }
    /// <summary>The data-parallel world size (set by the trainer; 1 in a single process).</summary>
    public int DataWorld { get; set; } = 1;

    /// <summary>
    /// Opens <c>data.train</c> (or <c>data.eval</c>) whatever its kind: a JSONL manifest read by <paramref name="readManifest"/>,
    /// or tar shards / Parquet streamed with <paramref name="fromShard"/> turning each sample into a record (see
    /// <see cref="DataSources"/>). <paramref name="prepare"/> gets each record with its (epoch, index) in the stream.
    /// </summary>
    protected IBatchSource OpenSamples<TRecord, TItem>(bool eval, DataCursor start, Func<string, bool, (List<TRecord> Records, int Skipped)> readManifest,
        Func<ShardSample, DataSection, TRecord> fromShard, Func<TRecord, long, long, TItem> prepare, Func<List<TItem>, int, DataCursor, MicroBatch> collate)
    {
        var d = eval ? Config.Data with { Readers = 1 } : Config.Data;
        return SampleStreams.Open(DataPath(eval), d, Config.Batch.Micro, Config.Seed, !eval && d.Shuffle, readManifest, fromShard, prepare, collate,
            start, eval ? 0 : DataRank, eval ? 1 : DataWorld, skipped => { if (!eval) SkippedRecords = skipped; });
    }

    /// <summary>
    /// The first <paramref name="count"/> records of <c>data.train</c> in stored order (all of a manifest when
    /// <paramref name="count"/> ≤ 0; of shards, at most <paramref name="count"/>, bad samples skipped when
    /// <c>data.skip_bad_records</c>), e.g. to fit feature statistics before training.
    /// </summary>
    protected List<TRecord> FirstRecords<TRecord>(int count, Func<string, bool, (List<TRecord> Records, int Skipped)> readManifest, Func<ShardSample, DataSection, TRecord> fromShard)
    {
        string path = DataPath(false);
        var (kind, files) = DataSources.Resolve(path);
        if (kind == DataSourceKind.Jsonl)
        {
            var (list, skipped) = readManifest(path, Config.Data.SkipBadRecords);
            SkippedRecords = skipped;
            return count > 0 ? list.Take(count).ToList() : list;
        }
        int limit = count > 0 ? count : 10_000;
        var records = new List<TRecord>();
        foreach (var unit in DataSources.Units(kind, files))
            foreach (var s in unit.Read(0, CancellationToken.None))
            {
                try { records.Add(fromShard(s, Config.Data)); }
                catch (FormatException e) when (Config.Data.SkipBadRecords) { _ = e; continue; }
                catch (FormatException e) { throw new DataFormatException($"{s.Where}: {e.Message}"); }
                if (records.Count >= limit) return records;
            }
        if (records.Count == 0) throw new DataFormatException($"{path}: no usable samples.");
        return records;
    }

    string DataPath(bool eval)
    {
        string? path = eval ? Config.Data.Eval : Config.Data.Train;
        if (string.IsNullOrEmpty(path)) throw new Text.ConfigException($"{Name}: data.{(eval ? "eval" : "train")} is not set.");
        return path;
    }

    /// <summary>Records skipped as bad while opening data (with <c>--skip-bad-records</c>).</summary>
    public int SkippedRecords { get; protected set; }

    /// <summary>Frees models.</summary>
    public void Dispose() { Dispose(true); Rng.Dispose(); GC.SuppressFinalize(this); }

    /// <summary>Frees models (recipes own what they built in <see cref="Setup"/>).</summary>
    protected virtual void Dispose(bool disposing) { }
}

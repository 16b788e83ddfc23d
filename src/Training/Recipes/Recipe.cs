using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// A training recipe = its default config (the paper's numbers), which components train, and the loss. The shared
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

    /// <summary>
    /// Component names (as in <c>train.freeze</c>/<c>train.trainable</c>) mapped to parameter-name prefixes; e.g.
    /// <c>text</c> → <c>model</c>, <c>lm_head</c>.
    /// </summary>
    public virtual IReadOnlyDictionary<string, string[]> Components { get; } = new Dictionary<string, string[]>
    {
        ["text"] = new[] { "model", "lm_head" },
        ["embeddings"] = new[] { "model.embed_tokens" },
    };

    /// <summary>Components trained when the config names none (empty = all parameters).</summary>
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

    /// <summary>Writes the model weights (and its config) to <paramref name="directory"/>.</summary>
    public virtual void SaveModel(string directory) =>
        Text.SafeTensorsWriter.Save(Path.Combine(directory, "model.safetensors"), Model.named_parameters().Select(p => new KeyValuePair<string, Tensor>(p.name, p.parameter)));

    /// <summary>Loads weights written by <see cref="SaveModel"/> (strict).</summary>
    public virtual void LoadModel(string directory)
    {
        using var reader = Text.CheckpointReader.Open(directory);
        Text.StateLoader.Load(Model, reader);
    }

    /// <summary>Records skipped as bad while opening data (with <c>--skip-bad-records</c>).</summary>
    public int SkippedRecords { get; protected set; }

    /// <summary>Frees models.</summary>
    public void Dispose() { Dispose(true); Rng.Dispose(); GC.SuppressFinalize(this); }

    /// <summary>Frees models (recipes own what they built in <see cref="Setup"/>).</summary>
    protected virtual void Dispose(bool disposing) { }
}

namespace Llama3.Multimodal.Training;

/// <summary>
/// A recipe's full configuration as read from JSON (snake_case keys, e.g. <c>optim.warmup_steps</c>). Every recipe
/// starts from its own defaults (the paper's numbers); a config file and <c>--set key=value</c> override them.
/// </summary>
public sealed record TrainConfig
{
    /// <summary>The exact <c>mm-train</c> command that runs this config (documentation only).</summary>
    public string Command { get; init; } = "";
    /// <summary>Recipe name (e.g. <c>text-pretrain</c>); must match the recipe that loads the config.</summary>
    public string Recipe { get; init; } = "";
    /// <summary>Seed of weight init, data shuffling and the training RNG.</summary>
    public long Seed { get; init; } = 1234;
    /// <summary>Tokenizer: <c>llama3</c> (Meta's 128K vocabulary), <c>bytes</c> (256 bytes + 8 specials, for tiny runs), or a path to a <c>tokenizer.model</c>.</summary>
    public string Tokenizer { get; init; } = "llama3";
    /// <summary>Model shape and initialisation.</summary>
    public ModelSection Model { get; init; } = new();
    /// <summary>Data manifests and sequence handling.</summary>
    public DataSection Data { get; init; } = new();
    /// <summary>Optimizer and learning-rate schedule.</summary>
    public OptimSection Optim { get; init; } = new();
    /// <summary>Global batch, micro-batch and the batch-size ramp.</summary>
    public BatchSection Batch { get; init; } = new();
    /// <summary>Loop control: steps, evaluation, checkpoints, freezing, device.</summary>
    public LoopSection Train { get; init; } = new();
    /// <summary>Recipe-specific loss settings (DPO β, NLL weight, reference model).</summary>
    public LossSection Loss { get; init; } = new();
    /// <summary>Settings of the multimodal recipes (presets, tiles, frames, BEST-RQ, speech encoder source).</summary>
    public MediaSection Media { get; init; } = new();
}

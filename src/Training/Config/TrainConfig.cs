using System.Text.Json.Serialization;

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
    /// <summary>Image settings of the <c>vision-stage1/2</c> recipes; absent (null) in the other recipes' configs.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public VisionSection? Vision { get; init; }
    /// <summary>Video settings of the <c>video</c> recipe; absent (null) in the other recipes' configs.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public VideoSection? Video { get; init; }
    /// <summary>Speech settings of the <c>speech-stage1/2</c> recipes; absent (null) in the other recipes' configs.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public SpeechSection? Speech { get; init; }

    /// <summary>The <see cref="Vision"/> section, or a <see cref="Text.ConfigException"/> naming the recipe when it has none.</summary>
    [JsonIgnore] public VisionSection VisionSettings => Vision ?? throw new Text.ConfigException($"recipe '{Recipe}': the config has no 'vision' section.");
    /// <summary>The <see cref="Video"/> section, or a <see cref="Text.ConfigException"/> naming the recipe when it has none.</summary>
    [JsonIgnore] public VideoSection VideoSettings => Video ?? throw new Text.ConfigException($"recipe '{Recipe}': the config has no 'video' section.");
    /// <summary>The <see cref="Speech"/> section, or a <see cref="Text.ConfigException"/> naming the recipe when it has none.</summary>
    [JsonIgnore] public SpeechSection SpeechSettings => Speech ?? throw new Text.ConfigException($"recipe '{Recipe}': the config has no 'speech' section.");
}

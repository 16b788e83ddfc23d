using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>Shared setup of the text-only recipes: tokenizer, a <see cref="LlamaForCausalLM"/>, HF-layout checkpoints.</summary>
public abstract class TextRecipe : Recipe
{
    LlamaForCausalLM? _lm;

    /// <summary>The tokenizer of the run.</summary>
    public ITrainingTokenizer Tokenizer { get; private set; } = ByteTokenizer.Instance;
    /// <summary>Device of the run.</summary>
    protected Device Device { get; private set; } = CPU;
    /// <summary>The decoder being trained.</summary>
    public LlamaForCausalLM Lm => _lm ?? throw new InvalidOperationException("call Setup first.");
    /// <inheritdoc/>
    public override nn.Module Model => Lm;

    /// <inheritdoc/>
    public override void Setup(TrainConfig config, Device device, ScalarType dtype)
    {
        Config = config; Device = device;
        Tokenizer = Llama3TrainingTokenizer.Resolve(config.Tokenizer);
        _lm = BuildDecoder(config, Tokenizer, device, dtype);
    }

    /// <summary>A decoder per <paramref name="config"/>: loaded from <c>model.init_from</c>, else the preset with overrides and the tokenizer's vocabulary, freshly initialised from the seed.</summary>
    public static LlamaForCausalLM BuildDecoder(TrainConfig config, ITrainingTokenizer tok, Device device, ScalarType dtype) =>
        ModelConstruction.Decoder(config, tok, device, dtype);

    /// <summary>Reads the manifest of the split, validating every record.</summary>
    protected List<T> ReadManifest<T>(bool eval, Func<string, bool, (List<T>, int)> read)
    {
        string? path = eval ? Config.Data.Eval : Config.Data.Train;
        if (string.IsNullOrEmpty(path)) throw new ConfigException($"{Name}: data.{(eval ? "eval" : "train")} is not set.");
        var (list, skipped) = read(path, Config.Data.SkipBadRecords);
        if (!eval) SkippedRecords = skipped;
        return list;
    }

    /// <summary>Saves in the Hugging Face layout (config.json + model.safetensors), loadable by <see cref="LlamaForCausalLM.FromPretrained(string, LoadOptions)"/>.</summary>
    public override void SaveModel(string directory) => Lm.Save(directory);

    /// <inheritdoc/>
    public override void LoadModel(string directory)
    {
        using var reader = CheckpointReader.Open(directory);
        StateLoader.Load(Lm, reader);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) _lm?.Dispose();
        base.Dispose(disposing);
    }

    /// <summary>Right-pads rows to a common length (≤ <paramref name="maxLen"/>, truncating longer ones) into [B, T] int64 (<see cref="Padding.Rows"/>).</summary>
    internal static Tensor Pad(IReadOnlyList<long[]> rows, long pad, int maxLen, out int len) => Padding.Rows(rows, pad, maxLen, out len);
}

using Llama3.Multimodal.Speech;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// What <c>speech-stage1</c> trains and checkpoints: the Conformer <c>encoder</c> (with its frozen per-bin feature
/// statistics) and the BEST-RQ objective <c>best_rq</c> (frozen random-projection quantizer + softmax heads). Saved under
/// the <c>speech_model.</c> prefix, so keys are <c>speech_model.encoder.*</c> and <c>speech_model.best_rq.*</c> as in the
/// speech checkpoint layout.
/// </summary>
public sealed class BestRqPretrainModel : nn.Module, Text.IComponentModel
{
#pragma warning disable IDE1006 // checkpoint key names
    /// <summary>The speech encoder.</summary>
    public readonly ConformerEncoder encoder;
    /// <summary>The BEST-RQ quantizer and heads.</summary>
    public readonly BestRqObjective best_rq;
#pragma warning restore IDE1006

    /// <summary>The components training chooses from: <c>encoder</c> (input projection and Conformer layers), <c>feature_stats</c>, <c>heads</c> (the BEST-RQ softmax heads) and <c>quantizer</c> (the frozen random-projection quantizer).</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> Components { get; } = new Dictionary<string, IReadOnlyList<string>>
    {
        ["encoder"] = new[] { "encoder.input_proj", "encoder.layers" },
        ["feature_stats"] = new[] { "encoder.feature_norm" },
        ["heads"] = new[] { "best_rq.heads" },
        ["quantizer"] = new[] { "best_rq.quantizer" },
    };

    /// <summary>Key prefix of every parameter in checkpoints.</summary>
    public const string KeyPrefix = "speech_model.";

    /// <summary>A fresh encoder (seeded) and objective for <paramref name="encoderConfig"/>.</summary>
    public BestRqPretrainModel(ConformerConfig encoderConfig, BestRqConfig objective, long seed, Device device, ScalarType dtype) : base("BestRqPretrainModel")
    {
        encoder = new ConformerEncoder(encoderConfig, device, dtype).InitializeWeights(seed);
        best_rq = new BestRqObjective(encoder, objective, seed + 1);
        RegisterComponents();
    }
}

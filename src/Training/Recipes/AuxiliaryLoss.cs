using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// An extra training loss of the image recipes (<c>vision-stage1/2</c>), computed on the image's cross-attention source
/// (the encoder and projector output the decoder's cross-attention layers read). A config enables it by name in
/// <c>vision.auxiliary_losses</c>; the loss is registered under that name in <see cref="AuxiliaryLossRegistry"/> by the
/// application (the library registers none). The recipe calls, in order: <see cref="Setup"/> once after the model is
/// built; <see cref="Targets"/> for every training record (on the data thread); <see cref="Collate"/> per micro-batch;
/// <see cref="Loss"/> on training micro-batches for which <see cref="HasTargets"/> holds. Evaluation batches carry no
/// targets, so the evaluation loss stays the caption loss.
/// </summary>
public interface IVisionAuxiliaryLoss : IDisposable
{
    /// <summary>Builds what the loss needs beside the model (e.g. a read-out head on <paramref name="context"/>'s device).</summary>
    void Setup(VisionAuxiliaryContext context);

    /// <summary>Parameters of the loss's own, trained beside the model (e.g. a read-out head) and kept in checkpoints for
    /// resuming but not in the saved model; names must not clash with the model's (prefix them, e.g. <c>glyph_head.</c>).</summary>
    IReadOnlyList<(string Name, Tensor Param)> Parameters { get; }

    /// <summary>The targets of one training record, or null when it has none. <paramref name="processed"/> is the image as
    /// the model sees it (tiles, grid, resized size). Called on the data thread: no tensors.</summary>
    object? Targets(ImageCaptionRecord record, RgbImage image, ProcessedImage processed);

    /// <summary>Adds the loss's tensors for a micro-batch's <paramref name="targets"/> (one per sample, null = none) to
    /// <paramref name="batch"/>, under keys of its own.</summary>
    void Collate(IReadOnlyList<object?> targets, MicroBatch batch);

    /// <summary>Whether <paramref name="batch"/> carries targets of this loss.</summary>
    bool HasTargets(MicroBatch batch);

    /// <summary>The loss summed over the micro-batch from the source <paramref name="states"/> [B, S, D], with metrics as
    /// means per counted item (e.g. per glyph); the recipe adds <c>weight × Sum</c> to the caption loss.</summary>
    (Tensor Sum, IReadOnlyDictionary<string, double> Metrics) Loss(Tensor states, MicroBatch batch);
}

/// <summary>What an <see cref="IVisionAuxiliaryLoss"/> is set up with.</summary>
/// <param name="Model">The model being trained.</param>
/// <param name="Tokenizer">The run's tokenizer.</param>
/// <param name="Device">The run's device.</param>
/// <param name="Dtype">The model's compute type.</param>
public sealed record VisionAuxiliaryContext(VisionLanguageModel Model, ITrainingTokenizer Tokenizer, Device Device, ScalarType Dtype);

/// <summary>
/// Auxiliary losses by name (<c>vision.auxiliary_losses</c>), the library's extension point for training objectives
/// that are not part of Llama 3's recipe. An application registers its losses before it builds a recipe, e.g.
/// <c>AuxiliaryLossRegistry.Register("my_loss", () =&gt; new MyLoss())</c>; recipes of its own register in
/// <see cref="RecipeRegistry"/> the same way.
/// </summary>
public static class AuxiliaryLossRegistry
{
    static readonly Dictionary<string, Func<IVisionAuxiliaryLoss>> Factories = new(StringComparer.Ordinal);
    static readonly object Gate = new();

    /// <summary>Registered names, in registration order.</summary>
    public static IReadOnlyList<string> Names { get { lock (Gate) return Factories.Keys.ToList(); } }

    /// <summary>Adds (or replaces) the loss called <paramref name="name"/>.</summary>
    public static void Register(string name, Func<IVisionAuxiliaryLoss> factory)
    {
        if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException("an auxiliary loss needs a name.", nameof(name));
        ArgumentNullException.ThrowIfNull(factory);
        lock (Gate) Factories[name] = factory;
    }

    /// <summary>A fresh instance of the loss called <paramref name="name"/>; a <see cref="ConfigException"/> names the
    /// registered ones when it is unknown.</summary>
    public static IVisionAuxiliaryLoss Create(string name)
    {
        Func<IVisionAuxiliaryLoss>? f;
        lock (Gate) Factories.TryGetValue(name, out f);
        if (f is not null) return f();
        var known = Names;
        throw new ConfigException($"vision.auxiliary_losses: no loss registered as '{name}' (registered: {(known.Count == 0 ? "none" : string.Join(", ", known))}; " +
            "an application registers its own with AuxiliaryLossRegistry.Register).");
    }
}

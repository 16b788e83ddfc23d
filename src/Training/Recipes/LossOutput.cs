using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>A micro-batch's summed loss (scalar, differentiable) and summed extra metrics (e.g. DPO reward accuracy).</summary>
/// <param name="Sum">Σ of per-element losses.</param>
/// <param name="Metrics">Σ of per-element metric values, averaged by the trainer like the loss.</param>
public sealed record LossOutput(Tensor Sum, IReadOnlyDictionary<string, double>? Metrics = null);

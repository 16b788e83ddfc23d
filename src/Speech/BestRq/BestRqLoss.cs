using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech;

/// <summary>Outcome of one BEST-RQ loss evaluation.</summary>
public sealed record BestRqLoss
{
    /// <summary>Scalar f32 loss (mean over codebooks of the cross-entropy over masked 40 ms frames), differentiable.</summary>
    public required Tensor Loss { get; init; }
    /// <summary>Masked 40 ms frames that entered the loss.</summary>
    public long MaskedFrames { get; init; }
    /// <summary>Real 40 ms frames in the batch.</summary>
    public long TotalFrames { get; init; }
    /// <summary>Fraction of masked frames × codebooks whose prediction equals the target.</summary>
    public double Accuracy { get; init; }
}

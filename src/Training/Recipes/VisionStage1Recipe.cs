namespace Llama3.Multimodal.Training;

/// <summary>
/// <c>vision-stage1</c>: image pretraining (Llama 3 paper §7.4): text decoder frozen, image encoder and adapters
/// trained; cosine schedule with peak lr 1e-3 (the paper's 10 × 10⁻⁴), weight decay 0.01, global batch 16 384 images
/// fitted to ≤ 4 tiles.
/// </summary>
public sealed class VisionStage1Recipe : VisionRecipe
{
    /// <inheritdoc/>
    public override string Name => "vision-stage1";
    /// <inheritdoc/>
    public override string Description => "Image pretraining: decoder frozen, image encoder + cross-attention adapters trained on image/caption pairs (caption tokens only).";
    /// <inheritdoc/>
    public override TrainConfig DefaultConfig() => PaperConfig(lr: 1e-3, minLr: 1e-5, steps: 366_000, warmup: 2000, maxTiles: 4);
}

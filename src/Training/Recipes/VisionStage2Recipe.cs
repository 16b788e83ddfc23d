namespace Llama3.Multimodal.Training;

/// <summary>
/// <c>vision-stage2</c>: annealing on a curated set at higher resolution (Llama 3 paper §7.4: lr 2e-5, higher per-tile resolution),
/// starting from the <c>vision-stage1</c> weights; same components train. Here the resolution rises through the tile
/// budget (<c>vision.max_tiles</c>: e.g. 1 tile in stage 1, stage 2 up to 2 × 2 tiles of the model's tile size).
/// </summary>
public sealed class VisionStage2Recipe : VisionRecipe
{
    /// <inheritdoc/>
    public override string Name => "vision-stage2";
    /// <inheritdoc/>
    public override string Description => "Image annealing: stage-1 model at higher resolution (more tiles), small lr (2e-5), decoder frozen.";
    /// <inheritdoc/>
    public override TrainConfig DefaultConfig() => PaperConfig(lr: 2e-5, minLr: 0, steps: 30_000, warmup: 0, maxTiles: 4) with
    {
        Model = new ModelSection { Preset = "llama3.1-8b", InitFrom = "runs/vision-stage1/final" },
        Data = new DataSection { Train = "images-curated.jsonl", SeqLen = 512 },
    };
}

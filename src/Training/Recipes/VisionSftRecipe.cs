using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// <c>vision-sft</c>: supervised finetuning of an image model on image–text dialogues (Llama 3 paper §7.5). It starts from
/// a pre-trained image model (<c>model.init_from</c>, e.g. the <c>vision-stage2</c> output), hot-swaps its language model
/// for an instruction-tuned one (<c>vision.language_model_from</c>, e.g. the <c>sft</c> output) and trains the image
/// encoder, the projector and the cross-attention layers; the language model stays frozen, so text-only prompts behave
/// exactly as the instruct model does (add <c>language_model</c> to <c>train.trainable</c> to train it too). Records are
/// <c>{"images": [...], "messages": [...]}</c> in the Llama 3.2 Vision Instruct chat format (<see cref="VisionChatTokens"/>,
/// the formatter inference uses); the loss covers assistant tokens only (content and <c>&lt;|eot_id|&gt;</c>, never
/// headers or user turns). Several runs with different hyperparameters are averaged afterwards with <c>mm-train average</c>
/// (the paper's "model soup"). The model is saved with the Instruct prompt format.
/// </summary>
public sealed class VisionSftRecipe : VisionRecipe
{
    /// <inheritdoc/>
    public override string Name => "vision-sft";
    /// <inheritdoc/>
    public override string Description => "Image SFT: image model + hot-swapped instruct LM (frozen); image encoder and adapters train on image dialogues, loss on assistant tokens.";

    /// <summary>
    /// Paper-scale defaults: lr 2e-5 with cosine decay and 100 warm-up steps (the Llama 3.2 Vision full-finetuning
    /// setting of torchtune), AdamW wd 0.01, global batch 256 dialogues, up to 4 tiles per image.
    /// </summary>
    public override TrainConfig DefaultConfig() => PaperConfig(lr: 2e-5, minLr: 0, steps: 5000, warmup: 100, maxTiles: 4) with
    {
        Model = new ModelSection { Preset = "llama3.1-8b", InitFrom = "runs/vision-stage2/final" },
        Data = new DataSection { Train = "image-dialogs.jsonl", SeqLen = 2048 },
        Batch = new BatchSection { Unit = "samples", Global = 256, Micro = 1 },
        Train = new LoopSection { SaveEvery = 500 },
        Vision = new VisionSection { Preset = "llama3.2-11b-vision", MaxTiles = 4, LanguageModelFrom = "runs/sft/final" },
    };

    /// <inheritdoc/>
    protected override VisionPromptFormat SavedPromptFormat => VisionPromptFormat.Instruct;

    /// <inheritdoc/>
    public override void Setup(TrainConfig config, Device device, ScalarType dtype)
    {
        RejectCaptioningLosses(config);
        base.Setup(config, device, dtype);
    }

    /// <summary>One prepared dialogue: ids, next-token labels (assistant tokens only) and its preprocessed images.</summary>
    internal sealed record DialogItem(long[] Ids, long[] Labels, IReadOnlyList<ProcessedImage> Images);

    internal DialogItem Prepare(VisionDialogRecord r)
    {
        var (ids, labels) = VisionChatTokens.Encode(Tokenizer, r.Messages, Vlm.Config.ImageTokenIndex, Config.Data.SeqLen);
        return new DialogItem(ids, labels, RecordMedia.Images(r.Images, r.ImageData).Select(i => ProcessImage(TilePreprocessor, Vlm.Preprocessor, i)).ToList());
    }

    /// <inheritdoc/>
    public override IBatchSource OpenData(bool eval, DataCursor start) =>
        OpenSamples<VisionDialogRecord, DialogItem>(eval, start, (p, skip) => (JsonlManifest.ReadVisionDialogs(p, skip, out int n), n), ShardVisionRecords.Dialog,
            (r, _, _) => Prepare(r), Collate);

    MicroBatch Collate(List<DialogItem> items, int seqLen, DataCursor end) =>
        VisionBatches.Collate(Vlm, Tokenizer, items.Select(i => (i.Ids, (long[]?)i.Labels, i.Images)).ToList(), seqLen, end, items.Sum(i => i.Labels.Count(l => l != -100)));

    /// <inheritdoc/>
    public override LossOutput Loss(MicroBatch batch)
    {
        using var scope = NewDisposeScope();
        using var images = batch.Images();
        var logits = Vlm.Forward(batch["input_ids"].to(Device), images);                                 // [B, T, V]
        return new LossOutput(PreferenceLosses.CrossEntropySum(logits, batch["labels"].to(Device)).MoveToOuterDisposeScope());
    }
}

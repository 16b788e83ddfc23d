using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// <c>text-pretrain</c>: next-token loss on documents packed into fixed-length rows with the document mask (no
/// attention across documents, positions restart per document). Defaults: Llama 3 initial pretraining (peak lr 8e-5,
/// 8000 warm-up steps, cosine to 8e-7 over 1.2M steps, 4M-token batches at 4096 ramping to 8M at 8192 after 252M tokens
/// and 16M after 2.87T). Annealing is the same recipe with <c>optim.schedule = linear</c> and <c>train.average_last</c>.
/// <c>data.train</c> is a JSONL manifest of <c>{"text"}</c>, tar shards or Parquet (the text by <c>data.text_column</c>).
/// </summary>
public sealed class TextPretrainRecipe : TextRecipe
{
    /// <inheritdoc/>
    public override string Name => "text-pretrain";
    /// <inheritdoc/>
    public override string Description => "Next-token pretraining on packed documents with the document mask (AdamW, warm-up + cosine, batch ramp).";

    /// <inheritdoc/>
    public override TrainConfig DefaultConfig() => new()
    {
        Command = "mm-train text-pretrain --config configs/training/text-pretrain.json --out runs/text-pretrain",
        Recipe = Name,
        Tokenizer = "llama3",
        Model = new ModelSection { Preset = "llama3.1-8b" },
        Data = new DataSection { Train = "text.jsonl", SeqLen = 4096 },
        Optim = new OptimSection { Lr = 8e-5, MinLr = 8e-7, WarmupSteps = 8000, TotalSteps = 1_200_000, Schedule = "cosine" },
        Batch = new BatchSection
        {
            Unit = "tokens", Global = 4L << 20, Micro = 1,
            Ramp = new[] { new RampStage(252_000_000, 8L << 20, 8192), new RampStage(2_870_000_000_000, 16L << 20, 8192) },
        },
        Train = new LoopSection { SaveEvery = 1000, EvalEvery = 1000 },
    };


    /// <inheritdoc/>
    public override IBatchSource OpenData(bool eval, DataCursor start)
    {
        string? path = eval ? Config.Data.Eval : Config.Data.Train;
        if (string.IsNullOrEmpty(path)) throw new ConfigException($"{Name}: data.{(eval ? "eval" : "train")} is not set.");
        var d = eval ? Config.Data with { Readers = 1 } : Config.Data;
        return SampleStreams.OpenPacked(path, d, Tokenizer, Config.Batch.Micro, Config.Seed, !eval && d.Shuffle, start,
            eval ? 0 : DataRank, eval ? 1 : DataWorld, skipped => { if (!eval) SkippedRecords = skipped; });
    }

    /// <inheritdoc/>
    public override LossOutput Loss(MicroBatch batch)
    {
        using var scope = NewDisposeScope();
        var ids = batch["input_ids"].to(Device);
        var logits = Lm.Forward(ids, new ForwardOptions { DocumentIds = batch["document_ids"] });   // [B, T, V]
        var sum = PreferenceLosses.CrossEntropySum(logits, batch["labels"].to(Device));
        return new LossOutput(sum.MoveToOuterDisposeScope());
    }
}

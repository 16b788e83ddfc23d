using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// <c>sft</c>: supervised fine-tuning on chat dialogs; the loss covers assistant response tokens only (their content
/// and <c>&lt;|eot_id|&gt;</c>), never the prompt or headers. Defaults: lr 1e-5, 9000 steps (Llama 3 §4.1.3).
/// </summary>
public sealed class SftRecipe : TextRecipe
{
    /// <inheritdoc/>
    public override string Name => "sft";
    /// <inheritdoc/>
    public override string Description => "Supervised fine-tuning on chat dialogs; loss on assistant response tokens only.";

    /// <inheritdoc/>
    public override TrainConfig DefaultConfig() => new()
    {
        Command = "mm-train sft --config configs/training/sft.json --out runs/sft",
        Recipe = Name,
        Model = new ModelSection { Preset = "llama3.1-8b", InitFrom = "checkpoints/pretrained" },
        Data = new DataSection { Train = "chat.jsonl", SeqLen = 8192 },
        Optim = new OptimSection { Lr = 1e-5, MinLr = 1e-6, WarmupSteps = 100, TotalSteps = 9000, Schedule = "cosine" },
        Batch = new BatchSection { Unit = "samples", Global = 256, Micro = 1 },
        Train = new LoopSection { SaveEvery = 500 },
    };


    /// <summary>Ids and next-token labels of one dialog (labels only where the next token is an assistant token).</summary>
    internal (long[] Ids, long[] Labels) Encode(DialogRecord d)
    {
        var (ids, mask) = ChatTokens.Dialog(Tokenizer, d.Messages);
        int len = Math.Min(ids.Count, Config.Data.SeqLen);
        return (ids.Take(len).Select(i => (long)i).ToArray(), PreferenceLosses.ShiftedLabels(ids, mask, len));
    }

    /// <inheritdoc/>
    public override IBatchSource OpenData(bool eval, DataCursor start)
    {
        return OpenSamples<DialogRecord, (long[] Ids, long[] Labels)>(eval, start, (p, skip) => (JsonlManifest.ReadDialogs(p, skip, out int s), s),
            ShardTextRecords.Dialog, (r, _, _) => Encode(r), Collate);
    }

    MicroBatch Collate(List<(long[] Ids, long[] Labels)> items, int seqLen, DataCursor end)
    {
        var ids = Pad(items.Select(i => i.Ids).ToList(), Tokenizer.PadId, seqLen, out int len);
        var labels = Pad(items.Select(i => i.Labels).ToList(), -100, seqLen, out _);
        long elements = items.Sum(i => i.Labels.Take(len).Count(l => l != -100));
        var b = new MicroBatch { Tokens = items.Sum(i => (long)Math.Min(len, i.Ids.Length)), Samples = items.Count, LossElements = elements, End = end };
        b.Tensors["input_ids"] = ids;
        b.Tensors["labels"] = labels;
        return b;
    }

    /// <inheritdoc/>
    public override LossOutput Loss(MicroBatch batch)
    {
        using var scope = NewDisposeScope();
        var logits = Lm.Forward(batch["input_ids"].to(Device));                                  // [B, T, V]
        return new LossOutput(PreferenceLosses.CrossEntropySum(logits, batch["labels"].to(Device)).MoveToOuterDisposeScope());
    }
}

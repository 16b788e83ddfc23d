using System.Text.Json;
using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// <c>reward-model</c> (alias <c>reward</c>): a scalar head on the decoder trained with the pairwise ranking loss
/// without a margin term (Llama 3 §4.1.2); pairs with an <c>edited</c> response rank edited &gt; chosen &gt; rejected
/// (three pairwise terms).
/// </summary>
public sealed class RewardModelRecipe : TextRecipe
{
    RewardModel? _rm;

    /// <inheritdoc/>
    public override string Name => "reward-model";
    /// <inheritdoc/>
    public override string Description => "Reward model: scalar head on the decoder, pairwise ranking loss (edited > chosen > rejected, no margin).";
    /// <summary>The reward model.</summary>
    public RewardModel Rm => _rm ?? throw new InvalidOperationException("call Setup first.");
    /// <inheritdoc/>
    public override nn.Module Model => Rm;


    /// <inheritdoc/>
    public override TrainConfig DefaultConfig() => new()
    {
        Command = "mm-train reward-model --config configs/training/reward-model.json --out runs/reward-model",
        Recipe = Name,
        Model = new ModelSection { Preset = "llama3.1-8b", InitFrom = "checkpoints/pretrained" },
        Data = new DataSection { Train = "pairs.jsonl", SeqLen = 8192 },
        Optim = new OptimSection { Lr = 1e-5, MinLr = 1e-6, WarmupSteps = 100, TotalSteps = 2000, Schedule = "cosine" },
        Batch = new BatchSection { Unit = "samples", Global = 512, Micro = 1 },
        Train = new LoopSection { SaveEvery = 500 },
    };


    /// <inheritdoc/>
    public override void Setup(TrainConfig config, Device device, ScalarType dtype)
    {
        base.Setup(config, device, dtype);
        _rm = new RewardModel(Lm, config.Seed + 1, config.Model.InitStd);
    }

    internal sealed record Item(long[] Chosen, long[] Rejected, long[]? Edited);

    internal Item Encode(PreferenceRecord p)
    {
        var prompt = ChatTokens.Prompt(Tokenizer, p.Prompt);
        long[] Row(string r) => prompt.Concat(ChatTokens.Response(Tokenizer, r)).Take(Config.Data.SeqLen).Select(i => (long)i).ToArray();
        return new Item(Row(p.Chosen), Row(p.Rejected), p.Edited is null ? null : Row(p.Edited));
    }

    /// <inheritdoc/>
    public override IBatchSource OpenData(bool eval, DataCursor start)
    {
        return OpenSamples<PreferenceRecord, Item>(eval, start, (p, skip) => (JsonlManifest.ReadPreferences(p, skip, out int s), s),
            ShardTextRecords.Preference, (r, _, _) => Encode(r), Collate);
    }

    MicroBatch Collate(List<Item> items, int seqLen, DataCursor end)
    {
        // Rows: B chosen, B rejected, then one per edited response; edited_of names each edited row's pair.
        var rows = items.Select(i => i.Chosen).Concat(items.Select(i => i.Rejected)).ToList();
        var editedOf = new List<long>();
        for (int k = 0; k < items.Count; k++) if (items[k].Edited is { } e) { rows.Add(e); editedOf.Add(k); }
        var b = new MicroBatch { Tokens = rows.Sum(r => (long)Math.Min(seqLen, r.Length)), Samples = items.Count, LossElements = items.Count, End = end };
        b.Tensors["input_ids"] = Pad(rows, Tokenizer.PadId, seqLen, out int len);
        b.Tensors["last"] = torch.tensor(rows.Select(r => (long)Math.Min(len, r.Length) - 1).ToArray());
        b.Tensors["edited_of"] = torch.tensor(editedOf.ToArray());
        return b;
    }

    /// <inheritdoc/>
    public override LossOutput Loss(MicroBatch batch)
    {
        using var scope = NewDisposeScope();
        var r = Rm.Rewards(batch["input_ids"], batch["last"]);                                   // [2B + E]
        var (total, correct) = PreferenceLosses.Ranking(r, (int)batch.Samples, batch["edited_of"]);
        return new LossOutput(total.MoveToOuterDisposeScope(), new Dictionary<string, double> { ["accuracy"] = correct });
    }

    /// <summary>Writes <c>config.json</c> (decoder config, <c>LlamaForSequenceClassification</c>, one label) and <c>model.safetensors</c>.</summary>
    public override void SaveModel(string directory)
    {
        Directory.CreateDirectory(directory);
        var cfg = LlamaConfigJson.ToHuggingFace(Rm.Config);
        cfg["architectures"] = new System.Text.Json.Nodes.JsonArray("LlamaForSequenceClassification");
        cfg["num_labels"] = 1;
        SafeTensorsWriter.Save(Path.Combine(directory, "model.safetensors"), Rm.named_parameters().Select(p => new KeyValuePair<string, Tensor>(p.name, p.parameter)));
        AtomicFile.WriteAllText(Path.Combine(directory, "config.json"), cfg.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <inheritdoc/>
    public override void LoadModel(string directory)
    {
        using var reader = CheckpointReader.Open(directory);
        StateLoader.Load(Rm, reader);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) _rm?.Dispose();
        else base.Dispose(disposing);
    }
}

using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// <c>dpo</c>: direct preference optimisation against a frozen reference model (Llama 3 §4.1.4): β 0.1, lr 1e-5, header
/// and end-of-turn special tokens masked out of the response log-likelihoods, plus 0.2 × the per-token NLL of the
/// chosen response. When a pair has an <c>edited</c> response it stands in for the chosen one (<c>loss.dpo_use_edited</c>).
/// With <c>loss.reference_update_every</c> &gt; 0 the reference moves towards the policy as an exponential moving average
/// (<see cref="ReferenceEma"/>, as <c>vision-dpo</c> does by default).
/// </summary>
public sealed class DpoRecipe : TextRecipe
{
    LlamaForCausalLM? _reference;

    /// <inheritdoc/>
    public override string Name => "dpo";
    /// <inheritdoc/>
    public override string Description => "Direct preference optimisation (β 0.1, specials masked, + 0.2·NLL on chosen) against a frozen reference.";

    /// <summary>The frozen reference model.</summary>
    public LlamaForCausalLM Reference => _reference ?? throw new InvalidOperationException("call Setup first.");

    /// <inheritdoc/>
    public override TrainConfig DefaultConfig() => new()
    {
        Command = "mm-train dpo --config configs/training/dpo.json --out runs/dpo",
        Recipe = Name,
        Model = new ModelSection { Preset = "llama3.1-8b", InitFrom = "runs/sft/averaged" },
        Data = new DataSection { Train = "pairs.jsonl", SeqLen = 8192 },
        Optim = new OptimSection { Lr = 1e-5, MinLr = 1e-5, WarmupSteps = 0, TotalSteps = 2000, Schedule = "constant" },
        Batch = new BatchSection { Unit = "samples", Global = 256, Micro = 1 },
        Train = new LoopSection { SaveEvery = 500 },
        Loss = new LossSection { DpoBeta = 0.1, NllWeight = 0.2 },
    };


    /// <inheritdoc/>
    public override void Setup(TrainConfig config, Device device, ScalarType dtype)
    {
        base.Setup(config, device, dtype);
        var refCfg = config.Loss.Reference is { Length: > 0 } r ? config with { Model = config.Model with { InitFrom = r } } : config;
        _reference = BuildDecoder(refCfg, Tokenizer, device, dtype);
        foreach (var p in _reference.parameters()) p.requires_grad_(false);
        _reference.eval();
    }

    /// <summary>Moves the reference towards the policy on update steps (<c>loss.reference_update_every</c>, <see cref="ReferenceEma"/>; off by default).</summary>
    public override void AfterStep(long step)
    {
        if (ReferenceEma.Due(Config.Loss, step)) ReferenceEma.Update(Reference, Lm, Config.Loss.ReferenceEma);
    }

    /// <summary>Saves the policy, plus the reference (<see cref="VisionDpoRecipe.ReferenceFile"/>) when it is updated.</summary>
    public override void SaveModel(string directory)
    {
        base.SaveModel(directory);
        if (Config.Loss.ReferenceUpdateEvery > 0) ReferenceEma.Save(Reference, directory);
    }

    /// <summary>Loads the policy and, when the folder has one, the reference.</summary>
    public override void LoadModel(string directory)
    {
        base.LoadModel(directory);
        ReferenceEma.LoadIfPresent(Reference, directory, Name);
    }

    internal sealed record Pair(long[] ChosenIds, long[] ChosenLabels, long[] RejectedIds, long[] RejectedLabels);

    /// <summary>Prompt + response rows; labels on response tokens that are not special (so <c>&lt;|eot_id|&gt;</c> is masked).</summary>
    internal Pair Encode(PreferenceRecord p)
    {
        var prompt = ChatTokens.Prompt(Tokenizer, p.Prompt);
        (long[], long[]) Row(string response)
        {
            var resp = ChatTokens.Response(Tokenizer, response);
            var ids = prompt.Concat(resp).ToList();
            var train = Enumerable.Repeat(false, prompt.Count).Concat(resp.Select(t => !Tokenizer.IsSpecial(t))).ToList();
            int len = Math.Min(ids.Count, Config.Data.SeqLen);
            return (ids.Take(len).Select(i => (long)i).ToArray(), PreferenceLosses.ShiftedLabels(ids, train, len));
        }
        var (ci, cl) = Row(Config.Loss.DpoUseEdited && p.Edited is not null ? p.Edited : p.Chosen);
        var (ri, rl) = Row(p.Rejected);
        return new Pair(ci, cl, ri, rl);
    }

    /// <inheritdoc/>
    public override IBatchSource OpenData(bool eval, DataCursor start)
    {
        return OpenSamples<PreferenceRecord, Pair>(eval, start, (p, skip) => (JsonlManifest.ReadPreferences(p, skip, out int s), s),
            ShardTextRecords.Preference, (r, _, _) => Encode(r), Collate);
    }

    MicroBatch Collate(List<Pair> items, int seqLen, DataCursor end)
    {
        var rows = items.Select(i => i.ChosenIds).Concat(items.Select(i => i.RejectedIds)).ToList();
        var labels = items.Select(i => i.ChosenLabels).Concat(items.Select(i => i.RejectedLabels)).ToList();
        var b = new MicroBatch { Tokens = rows.Sum(r => (long)Math.Min(seqLen, r.Length)), Samples = items.Count, LossElements = items.Count, End = end };
        b.Tensors["input_ids"] = Pad(rows, Tokenizer.PadId, seqLen, out _);      // [2B, T]: chosen rows, then rejected rows
        b.Tensors["labels"] = Pad(labels, -100, seqLen, out _);
        return b;
    }

    /// <inheritdoc/>
    public override LossOutput Loss(MicroBatch batch)
    {
        using var scope = NewDisposeScope();
        var ids = batch["input_ids"].to(Device);
        var labels = batch["labels"].to(Device);
        long n = ids.shape[0] / 2;
        var policy = PreferenceLosses.TokenLogProbs(Lm.Forward(ids), labels).sum(1);          // [2B]
        Tensor reference;
        using (torch.no_grad()) reference = PreferenceLosses.TokenLogProbs(Reference.Forward(ids), labels).sum(1);
        return PreferenceLosses.DpoWithNll(policy, reference, labels, (int)n, Config.Loss);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) _reference?.Dispose();
        base.Dispose(disposing);
    }
}

using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// <c>vision-dpo</c>: direct preference optimisation of an image model (Llama 3 §7.5) on
/// <c>{"images", "prompt", "chosen", "rejected", "edited"?}</c> records, with the text <c>dpo</c> recipe's loss (β, the
/// <c>loss.nll_weight</c> × per-token NLL of the chosen response, the edited response standing in for the chosen one)
/// and formatting tokens masked out of the response log-likelihoods (headers, <c>&lt;|eot_id|&gt;</c>, <c>&lt;|image|&gt;</c>:
/// only response text counts). The reference model starts as the policy (or <c>loss.reference</c>), stays frozen, and
/// every <c>loss.reference_update_every</c> steps moves towards the policy as an exponential moving average with decay
/// <c>loss.reference_ema</c> (<see cref="ReferenceEma"/>); its weights travel in each checkpoint
/// (<see cref="ReferenceFile"/>) so a run resumes exactly. The image encoder and adapters train (the defaults of
/// <c>vision-sft</c>); the saved model has the Instruct prompt format.
/// </summary>
public sealed class VisionDpoRecipe : VisionRecipe
{
    VisionLanguageModel? _reference;

    /// <summary>File of a checkpoint folder holding the reference model's weights (when it is updated).</summary>
    public const string ReferenceFile = "reference.safetensors";

    /// <inheritdoc/>
    public override string Name => "vision-dpo";
    /// <inheritdoc/>
    public override string Description => "Image DPO (β 0.1, formatting tokens masked, + 0.2·NLL on chosen); reference updated as an EMA of the policy every k steps.";
    /// <summary>The reference model.</summary>
    public VisionLanguageModel Reference => _reference ?? throw new InvalidOperationException("call Setup first.");

    /// <summary>
    /// Paper-scale defaults: the text DPO numbers (lr 1e-5 constant, β 0.1, NLL weight 0.2, 256 pairs a step) with the
    /// reference updated every 100 steps with decay 0.9 (the paper states the scheme, not its numbers).
    /// </summary>
    public override TrainConfig DefaultConfig() => PaperConfig(lr: 1e-5, minLr: 1e-5, steps: 2000, warmup: 0, maxTiles: 4) with
    {
        Model = new ModelSection { Preset = "llama3.1-8b", InitFrom = "runs/vision-sft/soup" },
        Data = new DataSection { Train = "image-pairs.jsonl", SeqLen = 2048 },
        Optim = new OptimSection { Lr = 1e-5, MinLr = 1e-5, WarmupSteps = 0, TotalSteps = 2000, Schedule = "constant", WeightDecay = 0.01 },
        Batch = new BatchSection { Unit = "samples", Global = 256, Micro = 1 },
        Train = new LoopSection { SaveEvery = 500 },
        Loss = new LossSection { DpoBeta = 0.1, NllWeight = 0.2, ReferenceEma = 0.9, ReferenceUpdateEvery = 100 },
    };

    /// <inheritdoc/>
    protected override VisionPromptFormat SavedPromptFormat => VisionPromptFormat.Instruct;

    /// <inheritdoc/>
    public override void Setup(TrainConfig config, Device device, ScalarType dtype)
    {
        RejectCaptioningLosses(config);
        base.Setup(config, device, dtype);
        _reference?.Dispose();
        if (config.Loss.Reference is { Length: > 0 } r)
        {
            _reference = VisionLanguageModel.FromPretrained(r, device, dtype);
            if (!_reference.named_parameters().Select(p => (p.name, string.Join(",", p.parameter.shape)))
                    .SequenceEqual(Vlm.named_parameters().Select(p => (p.name, string.Join(",", p.parameter.shape)))))
                throw new ConfigException($"loss.reference = '{r}': its parameters differ from the policy's (another model configuration).");
        }
        else
        {
            // The starting policy (after any language-model swap), copied.
            _reference = VisionLanguageModel.Create(Vlm.Config, device, dtype);
            var src = Vlm.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            using var noGrad = torch.no_grad();
            foreach (var (name, p) in _reference.named_parameters()) p.copy_(src[name]);
        }
        foreach (var p in _reference.parameters()) p.requires_grad_(false);
        _reference.eval();
    }

    /// <summary>Moves the reference towards the policy when <paramref name="step"/> is an update step (<see cref="ReferenceEma"/>).</summary>
    public override void AfterStep(long step)
    {
        if (ReferenceEma.Due(Config.Loss, step)) ReferenceEma.Update(Reference, Vlm, Config.Loss.ReferenceEma);
    }

    internal sealed record PairItem(long[] ChosenIds, long[] ChosenLabels, long[] RejectedIds, long[] RejectedLabels, IReadOnlyList<ProcessedImage> Images);

    /// <summary>Prompt + response rows; labels only on response tokens that are neither special nor <c>&lt;|image|&gt;</c>.</summary>
    internal PairItem Prepare(VisionPreferenceRecord p)
    {
        int image = Vlm.Config.ImageTokenIndex;
        var prompt = VisionChatTokens.Prompt(Tokenizer, p.Prompt, image);
        (long[], long[]) Row(string response)
        {
            var resp = VisionChatTokens.Response(Tokenizer, response);
            var ids = prompt.Concat(resp).ToList();
            var train = Enumerable.Repeat(false, prompt.Count).Concat(resp.Select(t => !Tokenizer.IsSpecial(t) && t != image)).ToList();
            int len = Math.Min(ids.Count, Config.Data.SeqLen);
            return (ids.Take(len).Select(i => (long)i).ToArray(), PreferenceLosses.ShiftedLabels(ids, train, len));
        }
        var (ci, cl) = Row(Config.Loss.DpoUseEdited && p.Edited is not null ? p.Edited : p.Chosen);
        var (ri, rl) = Row(p.Rejected);
        var images = RecordMedia.Images(p.Images, p.ImageData).Select(i => ProcessImage(TilePreprocessor, Vlm.Preprocessor, i)).ToList();
        return new PairItem(ci, cl, ri, rl, images);
    }

    /// <inheritdoc/>
    public override IBatchSource OpenData(bool eval, DataCursor start) =>
        OpenSamples<VisionPreferenceRecord, PairItem>(eval, start, (p, skip) => (JsonlManifest.ReadVisionPreferences(p, skip, out int n), n), ShardVisionRecords.Preference,
            (r, _, _) => Prepare(r), Collate);

    MicroBatch Collate(List<PairItem> items, int seqLen, DataCursor end)
    {
        var rows = items.Select(i => (i.ChosenIds, (long[]?)i.ChosenLabels, i.Images))
            .Concat(items.Select(i => (i.RejectedIds, (long[]?)i.RejectedLabels, i.Images))).ToList();      // [2B]: chosen rows, then rejected
        return VisionBatches.Collate(Vlm, Tokenizer, rows, seqLen, end, lossElements: items.Count, samples: items.Count);
    }

    /// <inheritdoc/>
    public override LossOutput Loss(MicroBatch batch)
    {
        using var scope = NewDisposeScope();
        using var images = batch.Images();
        var ids = batch["input_ids"].to(Device);
        var labels = batch["labels"].to(Device);
        int n = (int)(ids.shape[0] / 2);
        var policy = PreferenceLosses.TokenLogProbs(Vlm.Forward(ids, images), labels).sum(1);                 // [2B]
        Tensor reference;
        using (torch.no_grad()) reference = PreferenceLosses.TokenLogProbs(Reference.Forward(ids, images), labels).sum(1);
        return PreferenceLosses.DpoWithNll(policy, reference, labels, n, Config.Loss);
    }

    /// <summary>Saves the policy as <see cref="VisionRecipe.SaveModel"/> does, plus the reference (<see cref="ReferenceFile"/>) when it is updated.</summary>
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

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) _reference?.Dispose();
        base.Dispose(disposing);
    }
}

using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// <c>vision-reward</c>: a vision reward model (Llama 3 §7.5) — a scalar head on the image model's last-token hidden
/// state, trained with the pairwise ranking loss without a margin (§4.1.2); records with an <c>edited</c> response rank
/// edited &gt; chosen &gt; rejected. As in the paper, the image encoder and cross-attention layers come from the vision
/// SFT model (<c>model.init_from</c>) and train, while the self-attention layers come from the language reward model
/// (<c>vision.language_model_from</c> naming a <c>reward-model</c> output, whose scalar head comes along) and stay
/// frozen. The head trains unless it came from the language reward model (then add <c>score</c> to
/// <c>train.trainable</c> to train it). <c>model.init_from</c> may also name a vision reward model (this recipe's output):
/// training then continues from all of it, head included, unless <c>vision.language_model_from</c> brings a head.
/// Records: <c>{"images", "prompt", "chosen", "rejected", "edited"?}</c>.
/// </summary>
public sealed class VisionRewardRecipe : VisionRecipe
{
    VisionRewardModel? _rm;
    bool _headFromLanguageReward;
    Tensor? _initScore;

    /// <inheritdoc/>
    public override string Name => "vision-reward";
    /// <inheritdoc/>
    public override string Description => "Vision reward model: scalar head on the image model, pairwise ranking (edited > chosen > rejected, no margin); LM from the text RM, frozen.";
    /// <summary>The reward model.</summary>
    public VisionRewardModel Rm => _rm ?? throw new InvalidOperationException("call Setup first.");
    /// <inheritdoc/>
    public override nn.Module Model => Rm;
    /// <inheritdoc/>
    public override IReadOnlyList<string> DefaultTrainable => _headFromLanguageReward
        ? new[] { "vision_model", "multi_modal_projector", "cross_attention_layers" }
        : new[] { "vision_model", "multi_modal_projector", "cross_attention_layers", "score" };

    /// <summary>Paper-scale defaults: the text reward model's (lr 1e-5 cosine, 100 warm-up steps, 2000 steps, 512 pairs a step).</summary>
    public override TrainConfig DefaultConfig() => PaperConfig(lr: 1e-5, minLr: 1e-6, steps: 2000, warmup: 100, maxTiles: 4) with
    {
        Model = new ModelSection { Preset = "llama3.1-8b", InitFrom = "runs/vision-sft/soup" },
        Data = new DataSection { Train = "image-pairs.jsonl", SeqLen = 2048 },
        Batch = new BatchSection { Unit = "samples", Global = 512, Micro = 1 },
        Train = new LoopSection { SaveEvery = 500 },
        Vision = new VisionSection { Preset = "llama3.2-11b-vision", MaxTiles = 4, LanguageModelFrom = "runs/reward-model/final" },
    };

    /// <inheritdoc/>
    protected override VisionPromptFormat SavedPromptFormat => VisionPromptFormat.Instruct;

    /// <summary>A vision reward folder in <c>model.init_from</c> gives its image model here and its head in <see cref="Setup"/>.</summary>
    protected override VisionLanguageModel BuildModel(TrainConfig config, Device device, ScalarType dtype)
    {
        _initScore?.Dispose(); _initScore = null;
        if (config.Model.InitFrom is not { Length: > 0 } dir || !VisionRewardModel.IsRewardFolder(dir)) return base.BuildModel(config, device, dtype);
        var (vlm, score) = VisionRewardModel.ReadParts(dir, device, dtype);
        _initScore = score;
        return vlm;
    }

    /// <inheritdoc/>
    public override void Setup(TrainConfig config, Device device, ScalarType dtype)
    {
        RejectCaptioningLosses(config);
        var v = config.VisionSettings;
        base.Setup(config, device, dtype);
        _rm = new VisionRewardModel(Vlm, config.Seed + 1, config.Model.InitStd);
        if (_initScore is { } init)
        {
            using (torch.no_grad()) _rm.score.weight!.copy_(init);
            init.Dispose(); _initScore = null;
        }
        _headFromLanguageReward = false;
        if (v.LanguageModelFrom is { Length: > 0 } dir)
        {
            using var reader = CheckpointReader.Open(dir);
            if (reader.Keys.Contains("score.weight"))
            {
                using var t = reader.Read("score.weight");
                if (!t.shape.SequenceEqual(_rm.score.weight.shape))
                    throw new ConfigException($"vision.language_model_from = '{dir}': score.weight has shape [{string.Join(", ", t.shape)}], the vision reward model needs [{string.Join(", ", _rm.score.weight.shape)}].");
                using (torch.no_grad()) _rm.score.weight.copy_(t);
                _headFromLanguageReward = true;
            }
        }
    }

    internal sealed record PairItem(long[] Chosen, long[] Rejected, long[]? Edited, IReadOnlyList<ProcessedImage> Images);

    internal PairItem Prepare(VisionPreferenceRecord p)
    {
        int image = Vlm.Config.ImageTokenIndex;
        var prompt = VisionChatTokens.Prompt(Tokenizer, p.Prompt, image);
        long[] Row(string r) => prompt.Concat(VisionChatTokens.Response(Tokenizer, r)).Take(Config.Data.SeqLen).Select(i => (long)i).ToArray();
        var images = RecordMedia.Images(p.Images, p.ImageData).Select(i => ProcessImage(TilePreprocessor, Vlm.Preprocessor, i)).ToList();
        return new PairItem(Row(p.Chosen), Row(p.Rejected), p.Edited is null ? null : Row(p.Edited), images);
    }

    /// <inheritdoc/>
    public override IBatchSource OpenData(bool eval, DataCursor start) =>
        OpenSamples<VisionPreferenceRecord, PairItem>(eval, start, (p, skip) => (JsonlManifest.ReadVisionPreferences(p, skip, out int n), n), ShardVisionRecords.Preference,
            (r, _, _) => Prepare(r), Collate);

    MicroBatch Collate(List<PairItem> items, int seqLen, DataCursor end)
    {
        // Rows: B chosen, B rejected, then one per edited response (edited_of names its pair); each with its record's images.
        var rows = new List<(long[], long[]?, IReadOnlyList<ProcessedImage>)>();
        rows.AddRange(items.Select(i => (i.Chosen, (long[]?)null, i.Images)));
        rows.AddRange(items.Select(i => (i.Rejected, (long[]?)null, i.Images)));
        var editedOf = new List<long>();
        for (int k = 0; k < items.Count; k++) if (items[k].Edited is { } e) { rows.Add((e, null, items[k].Images)); editedOf.Add(k); }
        var b = VisionBatches.Collate(Vlm, Tokenizer, rows, seqLen, end, lossElements: items.Count, samples: items.Count);
        b.Tensors["edited_of"] = torch.tensor(editedOf.ToArray());
        return b;
    }

    /// <inheritdoc/>
    public override LossOutput Loss(MicroBatch batch)
    {
        using var scope = NewDisposeScope();
        using var images = batch.Images();
        var r = Rm.Rewards(batch["input_ids"].to(Device), images, batch["last"]);              // [2B + E]
        var (total, correct) = PreferenceLosses.Ranking(r, (int)batch.Samples, batch["edited_of"]);
        return new LossOutput(total.MoveToOuterDisposeScope(), new Dictionary<string, double> { ["accuracy"] = correct });
    }

    /// <summary>Writes the reward model (<see cref="VisionRewardModel.Save"/>) and <see cref="MediaTokens.InfoFile"/>.</summary>
    public override void SaveModel(string directory)
    {
        Vlm.PromptFormat = SavedPromptFormat;
        Rm.Save(directory);
        MediaTokens.WriteInfo(directory, Name, Config);
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
        if (disposing) { _rm?.score.Dispose(); _initScore?.Dispose(); }
        base.Dispose(disposing);
    }
}

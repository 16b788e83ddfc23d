using System.Runtime.CompilerServices;
using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// A reward model: the Llama decoder stack with a scalar head on the final hidden state of each sequence's last token
/// (HF <c>LlamaForSequenceClassification</c> with one label: keys <c>model.*</c> and <c>score.weight</c> [1, D]).
/// </summary>
public sealed class RewardModel : nn.Module, Text.IComponentModel
{
#pragma warning disable IDE1006
    /// <summary>The decoder stack.</summary>
    public readonly LlamaTextModel model;
    /// <summary>Scalar head, no bias.</summary>
    public readonly Linear score;
#pragma warning restore IDE1006

    /// <summary>The components training chooses from: <c>model</c> (the decoder stack), <c>embed_tokens</c> and <c>score</c> (the scalar head).</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> Components { get; } = new Dictionary<string, IReadOnlyList<string>>
    {
        ["model"] = new[] { "model" },
        ["embed_tokens"] = new[] { "model.embed_tokens" },
        ["score"] = new[] { "score" },
    };
    readonly StrongBox<LlamaForCausalLM> _lm;

    /// <summary>Wraps <paramref name="lm"/>'s stack (its output head is not used) and adds a head initialised N(0, std²) from <paramref name="seed"/>.</summary>
    public RewardModel(LlamaForCausalLM lm, long seed, double std = 0.02) : base("RewardModel")
    {
        _lm = new StrongBox<LlamaForCausalLM>(lm);
        model = lm.model;
        score = Layers.Linear(lm.Config.HiddenSize, 1, false, lm.Device, lm.DType);
        RegisterComponents();
        WeightInit.Apply(score, seed, std);
    }

    /// <summary>The decoder configuration.</summary>
    public LlamaConfig Config => _lm.Value!.Config;

    /// <summary>Rewards [N] (f32) of sequences <paramref name="ids"/> [N, T] read at positions <paramref name="last"/> [N].</summary>
    public Tensor Rewards(Tensor ids, Tensor last)
    {
        using var scope = NewDisposeScope();
        var lm = _lm.Value!;
        var h = lm.Hidden(lm.Embed(ids.to(lm.Device)));                                          // [N, T, D]
        var idx = last.to(lm.Device).view(-1, 1, 1).expand(-1, 1, h.shape[2]);
        var hl = h.gather(1, idx).squeeze(1);                                                     // [N, D]
        return score.forward(hl).squeeze(-1).to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>Loads a reward model written by the <c>reward-model</c> recipe (<c>config.json</c> + <c>model.safetensors</c> with <c>model.*</c> and <c>score.weight</c>).</summary>
    public static RewardModel FromPretrained(string directory, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        string path = Path.Combine(directory, "config.json");
        if (!File.Exists(path)) throw new CheckpointFormatException($"{directory}: config.json not found (expected a reward-model checkpoint).");
        var cfg = LlamaConfigJson.FromHuggingFace(LlamaConfigJson.ReadObject(path), path, new HashSet<string> { "num_labels", "architectures", "model_type" });
        var lm = LlamaForCausalLM.Create(cfg with { TieWordEmbeddings = true }, device ?? CPU, dtype);
        var rm = new RewardModel(lm, 0);
        using var reader = CheckpointReader.Open(directory);
        StateLoader.Load(rm, reader);
        return rm;
    }

    /// <summary>Frees the wrapped model.</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing) _lm.Value?.Dispose();
        base.Dispose(disposing);
    }
}

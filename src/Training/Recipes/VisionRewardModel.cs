using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// A vision reward model (Llama 3 §7.5): an image-text model with a scalar head on the final hidden state of each
/// sequence's last token, as <see cref="RewardModel"/> does for text. Parameter names are the image model's
/// (<c>vision_model.*</c>, <c>multi_modal_projector.*</c>, <c>language_model.*</c>) plus <c>score.weight</c> [1, D]; the
/// folder's <c>config.json</c> is the Mllama one with <c>architectures</c> = <c>MllamaForSequenceClassification</c>.
/// </summary>
public sealed class VisionRewardModel : nn.Module, IComponentModel
{
#pragma warning disable IDE1006
    /// <summary>Image encoder (shared with <see cref="Vlm"/>).</summary>
    public readonly VisionModel vision_model;
    /// <summary>Projector (shared with <see cref="Vlm"/>).</summary>
    public readonly Linear multi_modal_projector;
    /// <summary>Decoder with cross-attention blocks (shared with <see cref="Vlm"/>); its output head is not used.</summary>
    public readonly LlamaForCausalLM language_model;
    /// <summary>Scalar head, no bias.</summary>
    public readonly Linear score;
#pragma warning restore IDE1006
    readonly StrongBox<VisionLanguageModel> _vlm;

    /// <summary>Wraps <paramref name="vlm"/> (its modules are shared, not copied) and adds a head initialised N(0, std²) from <paramref name="seed"/>.</summary>
    public VisionRewardModel(VisionLanguageModel vlm, long seed, double std = 0.02) : base("VisionRewardModel")
    {
        _vlm = new StrongBox<VisionLanguageModel>(vlm);
        vision_model = vlm.vision_model;
        multi_modal_projector = vlm.multi_modal_projector;
        language_model = vlm.language_model;
        score = Layers.Linear(vlm.Config.Text.HiddenSize, 1, false, vlm.Device, vlm.DType);
        RegisterComponents();
        WeightInit.Apply(score, seed, std);
        var c = new Dictionary<string, IReadOnlyList<string>>(vlm.Components) { ["score"] = new[] { "score" } };
        Components = c;
    }

    /// <summary>The image-text model the reward model is built on.</summary>
    public VisionLanguageModel Vlm => _vlm.Value!;

    /// <summary>The image model's components (<see cref="VisionLanguageModel.Components"/>) and <c>score</c> (the scalar head).</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> Components { get; }

    /// <summary>
    /// Rewards [N] (f32) of token rows <paramref name="ids"/> [N, T] (with <c>&lt;|image|&gt;</c> tokens) and their
    /// <paramref name="images"/> (null for text only), read at positions <paramref name="last"/> [N].
    /// </summary>
    public Tensor Rewards(Tensor ids, ImageBatch? images, Tensor last)
    {
        using var scope = NewDisposeScope();
        var h = Vlm.HiddenStates(ids, images);                                                    // [N, T, D]
        var idx = last.to(h.device).view(-1, 1, 1).expand(-1, 1, h.shape[2]);
        var hl = h.gather(1, idx).squeeze(1);                                                     // [N, D]
        return score.forward(hl).squeeze(-1).to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>Writes <c>config.json</c> (Mllama, <c>MllamaForSequenceClassification</c>), <c>generation_config.json</c> and <c>model.safetensors</c>.</summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        Vlm.SaveConfig(directory);
        string path = Path.Combine(directory, "config.json");
        var cfg = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        cfg["architectures"] = new JsonArray("MllamaForSequenceClassification");
        cfg["id2label"] = new JsonObject { ["0"] = "LABEL_0" };
        AtomicFile.WriteAllText(path, cfg.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        SafeTensorsWriter.Save(Path.Combine(directory, "model.safetensors"), named_parameters().Select(p => new KeyValuePair<string, Tensor>(p.name, p.parameter)));
    }

    /// <summary>Loads a folder written by <see cref="Save"/> (the <c>vision-reward</c> recipe), strictly.</summary>
    public static VisionRewardModel FromPretrained(string directory, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        string path = Path.Combine(directory, "config.json");
        if (!File.Exists(path)) throw new CheckpointFormatException($"{directory}: config.json not found (expected a vision-reward checkpoint).");
        if (!IsRewardFolder(directory))
            throw new CheckpointFormatException($"{path}: not a vision reward model (architectures is not MllamaForSequenceClassification; the vision-reward recipe writes these).");
        var vlm = VisionLanguageModel.Create(VisionLanguageConfigJson.Read(path), device ?? CPU, dtype);
        var rm = new VisionRewardModel(vlm, 0);
        try
        {
            using var reader = CheckpointReader.Open(directory);
            StateLoader.Load(rm, reader);
            vlm.Tokenizer = Llama3Tokenizer.FromModelDirectory(directory) ?? Llama3Tokenizer.Default;
            return rm;
        }
        catch
        {
            rm.Dispose();
            throw;
        }
    }

    /// <summary>True when <paramref name="directory"/> holds a vision reward model (its config.json names MllamaForSequenceClassification).</summary>
    public static bool IsRewardFolder(string directory)
    {
        string path = Path.Combine(directory, "config.json");
        return File.Exists(path) && File.ReadAllText(path).Contains("MllamaForSequenceClassification", StringComparison.Ordinal);
    }

    /// <summary>
    /// The image model of the reward model in <paramref name="directory"/> (every weight but <c>score.weight</c>), with
    /// the folder's tokenizer and prompt format, and the head's weight [1, D] apart.
    /// </summary>
    public static (VisionLanguageModel Vlm, Tensor Score) ReadParts(string directory, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        var rm = FromPretrained(directory, device, dtype);
        var score = rm.score.weight!.detach().clone().DetachFromDisposeScope();
        // The image model outlives the wrapper, which is left to the collector (disposing it would free the shared
        // modules); only its head is freed now.
        var vlm = rm.Vlm;
        rm._vlm.Value = null!;
        rm.score.Dispose();
        vlm.PromptFormat = VisionPrompt.FormatOf(directory);
        return (vlm, score);
    }

    /// <summary>Frees the wrapped model.</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing) _vlm.Value?.Dispose();
        base.Dispose(disposing);
    }
}

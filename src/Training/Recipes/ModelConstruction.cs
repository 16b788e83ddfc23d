using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// What a run's config says about the model it starts from, for every recipe: the text decoder of <c>model.*</c> and
/// the tokenizer, and the image-text config of a preset with those overrides. The models themselves are built by
/// their libraries (<see cref="LlamaForCausalLM.Create"/>, <see cref="VisionLanguageModel.FromTextModel"/>,
/// <c>VideoLanguageModel.FromImageModel</c>, <c>SpeechModel.ForTextModel</c>).
/// </summary>
internal static class ModelConstruction
{
    /// <summary>
    /// The decoder of <paramref name="config"/>: loaded from <c>model.init_from</c>, else <c>model.preset</c> with the
    /// <c>model.*</c> overrides and the tokenizer's vocabulary, freshly initialised from the seed.
    /// </summary>
    public static LlamaForCausalLM Decoder(TrainConfig config, ITrainingTokenizer tok, Device device, ScalarType dtype)
    {
        var m = config.Model;
        IReadOnlyList<Device>? Devices(int layers) => config.Train.Devices is not { } d ? null
            : d.Trim() == "auto" ? DevicePlacement.Auto(layers, Console.Error.WriteLine) : ConfigLoader.DeviceList(d);
        if (!string.IsNullOrEmpty(m.InitFrom))
        {
            var devs = config.Train.Devices is null ? null : Devices(ModelLayers(m.InitFrom));
            return LlamaForCausalLM.FromPretrained(m.InitFrom, device, dtype, devices: devs);
        }
        var c = TextPresets.Get(m.Preset);
        c = c with
        {
            HiddenSize = m.HiddenSize ?? c.HiddenSize, NumLayers = m.NumLayers ?? c.NumLayers, NumHeads = m.NumHeads ?? c.NumHeads,
            NumKvHeads = m.NumKvHeads ?? c.NumKvHeads, IntermediateSize = m.IntermediateSize ?? c.IntermediateSize,
            MaxPositionEmbeddings = m.MaxPositionEmbeddings ?? c.MaxPositionEmbeddings, TieWordEmbeddings = m.TieWordEmbeddings ?? c.TieWordEmbeddings,
            VocabSize = tok.VocabSize, BosTokenId = tok.BosId, EosTokenIds = new[] { tok.EosId, tok.EotId }, PadTokenId = tok.PadId,
        };
        c.Validate($"{config.Recipe} model");
        return LlamaForCausalLM.Create(c, device, dtype, devices: Devices(c.NumLayers)).InitializeWeights(config.Seed, m.InitStd);
    }

    static int ModelLayers(string dir)
    {
        string hf = Path.Combine(dir, "config.json");
        return File.Exists(hf) ? LlamaConfigJson.ReadHuggingFace(hf).NumLayers : LlamaConfigJson.ReadMeta(Path.Combine(dir, "params.json")).NumLayers;
    }

    /// <summary>
    /// The image-text config of <paramref name="preset"/> with the <c>model.*</c> overrides of <paramref name="config"/>
    /// (the decoder's layer count is the preset's: its cross-attention schedule depends on it) and the tokenizer's
    /// vocabulary, special ids and <c>&lt;|image|&gt;</c> id.
    /// </summary>
    public static VisionLanguageConfig Vision(TrainConfig config, VisionLanguageConfig preset, ITrainingTokenizer tok)
    {
        var m = config.Model;
        var t = preset.Text with
        {
            HiddenSize = m.HiddenSize ?? preset.Text.HiddenSize, NumHeads = m.NumHeads ?? preset.Text.NumHeads, NumKvHeads = m.NumKvHeads ?? preset.Text.NumKvHeads,
            IntermediateSize = m.IntermediateSize ?? preset.Text.IntermediateSize, MaxPositionEmbeddings = m.MaxPositionEmbeddings ?? preset.Text.MaxPositionEmbeddings,
            TieWordEmbeddings = m.TieWordEmbeddings ?? preset.Text.TieWordEmbeddings,
            VocabSize = tok.VocabSize, ExtraEmbeddingRows = VisionLanguageConfig.ExtraEmbeddingRows,
            BosTokenId = tok.BosId, EosTokenIds = new[] { tok.EosId, tok.EotId }, PadTokenId = tok.PadId,
        };
        return preset with { Text = t, ImageTokenIndex = MediaTokens.ImageTokenId(tok) };
    }

    /// <summary>Whether <paramref name="dir"/> holds an image-text model (its config.json has a <c>vision_config</c>).</summary>
    public static bool IsVisionFolder(string dir)
    {
        string p = Path.Combine(dir, "config.json");
        return File.Exists(p) && File.ReadAllText(p).Contains("\"vision_config\"", StringComparison.Ordinal);
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;

namespace Llama3.Multimodal.Training;

/// <summary>
/// <c>mm-train grow-vision</c>: a trained vision model folder → a folder with a grown image encoder
/// (<see cref="VisionEncoderGrowth"/>) that any vision recipe can continue through <c>model.init_from</c>.
/// </summary>
public static class VisionGrowthTool
{
    /// <summary>Side files carried over from the source folder (tokenizer, recipe record) when present.</summary>
    static readonly string[] SideFiles = { "tokenizer.model", "tokenizer.json", "tokenizer_config.json", "train_info.json", "generation_config.json" };

    /// <summary>
    /// Grows the model in <paramref name="modelDir"/> into <paramref name="outDir"/> (which must not exist or be empty):
    /// weights and <c>config.json</c> are written to a temporary folder that is then renamed, with the side files and a
    /// <c>growth.json</c> recording the source and the options. Returns the grown encoder's parameter counts (before, after).
    /// </summary>
    public static (long Before, long After) Run(string modelDir, string outDir, VisionGrowthOptions options)
    {
        if (!Directory.Exists(modelDir)) throw new CheckpointFormatException($"{modelDir}: model folder not found.");
        string full = Path.GetFullPath(outDir);
        if (Directory.Exists(full) && Directory.EnumerateFileSystemEntries(full).Any())
            throw new IOException($"{full}: the output folder exists and is not empty; nothing was written.");
        string tmp = full.TrimEnd(Path.DirectorySeparatorChar) + ".tmp-" + Environment.ProcessId;
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        try { VisionEncoderGrowth.GrownConfig(VisionLanguageConfigJson.Read(Path.Combine(modelDir, "config.json")), options); }
        catch (ArgumentOutOfRangeException e) { throw new ConfigException($"grow-vision: {e.Message.Split(" (Parameter")[0]}", e); }
        catch (FileNotFoundException) { throw new CheckpointFormatException($"{modelDir}: config.json not found."); }
        using var source = VisionLanguageModel.FromPretrained(modelDir);
        using var grown = VisionEncoderGrowth.Grow(source, options);
        try
        {
            grown.Save(tmp);
            foreach (var name in SideFiles)
            {
                string p = Path.Combine(modelDir, name);
                if (File.Exists(p)) File.Copy(p, Path.Combine(tmp, name), overwrite: true);
            }
            var record = new JsonObject
            {
                ["source"] = Path.GetFullPath(modelDir),
                ["width_factor"] = options.WidthFactor,
                ["mlp_factor"] = options.MlpFactor,
                ["add_global_layers"] = options.AddGlobalLayers,
                ["add_local_layers"] = options.AddLocalLayers,
                ["add_cross_attention_layers"] = options.AddCrossAttentionLayers,
                ["noise"] = options.Noise,
                ["open_gates"] = options.OpenGates,
                ["seed"] = options.Seed,
                ["vision_hidden_size"] = grown.Config.Vision.HiddenSize,
                ["vision_intermediate_size"] = grown.Config.Vision.IntermediateSize,
                ["vision_global_layers"] = grown.Config.Vision.NumGlobalLayers,
                ["vision_local_layers"] = grown.Config.Vision.NumHiddenLayers,
                ["cross_attention_layers"] = new JsonArray(grown.Config.CrossAttentionLayers.Select(i => (JsonNode)i).ToArray()),
            };
            File.WriteAllText(Path.Combine(tmp, "growth.json"), record.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            if (Directory.Exists(full)) Directory.Delete(full);   // empty (checked above)
            Directory.Move(tmp, full);
        }
        catch
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
            throw;
        }
        return (EncoderParameters(source), EncoderParameters(grown));
    }

    static long EncoderParameters(VisionLanguageModel m) =>
        m.named_parameters().Where(p => p.name.StartsWith("vision_model.", StringComparison.Ordinal)).Sum(p => p.parameter.numel());
}

using Llama3.Multimodal.Vision;
using TorchSharp;

namespace Llama3.Multimodal.Demo;

/// <summary>
/// The text decoder inside a vision model, as a text model folder of its own (<c>mm-demo extract-lm</c>). The demo's
/// vision model was built around a text-pretrained decoder that stayed frozen through the vision stages, and that
/// decoder is not shipped on its own; its self-attention layers, embedding (without the image rows) and final norm are
/// exactly it. Instruction-tuning this decoder with <c>sft</c> gives the instruct decoder that the vision adapters still
/// fit, the one <c>vision-sft</c> swaps in.
/// </summary>
public static class DecoderExtraction
{
    /// <summary>
    /// Writes the decoder of the vision model in <paramref name="visionDir"/> to <paramref name="outDir"/> (config.json,
    /// model.safetensors in the Hugging Face Llama layout, and the tokenizer.model beside the vision model's); returns the
    /// self-attention layer indices it took, in order.
    /// </summary>
    public static IReadOnlyList<int> Extract(string visionDir, string outDir)
    {
        using var vlm = VisionLanguageModel.FromPretrained(visionDir);
        var cross = vlm.Config.CrossAttentionLayers.ToHashSet();
        var tc = vlm.Config.Text;
        var self = Enumerable.Range(0, tc.NumLayers).Where(i => !cross.Contains(i)).ToList();
        using var lm = LlamaForCausalLM.Create(tc with { NumLayers = self.Count, ExtraEmbeddingRows = 0 });
        var src = vlm.language_model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        const string pre = "model.layers.";
        using (torch.no_grad())
            foreach (var (name, p) in lm.named_parameters())
            {
                string key = name;
                if (name.StartsWith(pre, StringComparison.Ordinal))
                {
                    int dot = name.IndexOf('.', pre.Length);
                    key = $"{pre}{self[int.Parse(name.AsSpan(pre.Length, dot - pre.Length))]}{name[dot..]}";
                }
                if (!src.TryGetValue(key, out var s)) throw new CheckpointFormatException($"{visionDir}: no '{key}' for the decoder's '{name}'.");
                if (s.shape.SequenceEqual(p.shape)) p.copy_(s);
                else if (s.dim() == 2 && s.shape[1] == p.shape[1] && s.shape[0] > p.shape[0]) p.copy_(s.narrow(0, 0, p.shape[0]));
                else throw new CheckpointFormatException($"{visionDir}: '{key}' has shape [{string.Join(", ", s.shape)}], the decoder's '{name}' [{string.Join(", ", p.shape)}].");
            }
        Directory.CreateDirectory(outDir);
        lm.Save(outDir);
        string tok = Path.Combine(visionDir, "tokenizer.model");
        if (File.Exists(tok))
        {
            string dst = Path.Combine(outDir, "tokenizer.model"), tmp = dst + ".tmp";
            File.Copy(tok, tmp, overwrite: true);
            File.Move(tmp, dst, overwrite: true);
        }
        return self;
    }
}

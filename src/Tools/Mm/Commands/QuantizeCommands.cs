using System.CommandLine;
using Llama3.Multimodal.Speech;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Video;
using Llama3.Multimodal.Vision;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Tools.Mm.Commands;

/// <summary><c>mm quantize</c>: writes a q8 copy of a model folder that loads directly.</summary>
public static class QuantizeCommands
{
    /// <summary>The commands of this group.</summary>
    public static IEnumerable<Command> All(CliIO io) => new[] { Quantize(io) };

    static Command Quantize(CliIO io)
    {
        var model = new Option<string>("--model") { Description = "model folder: text (HF config.json), image, video or speech model", Required = true };
        var to = new Option<string>("--to") { Description = "target format: q8 (int8 with one f16 scale per 32 weights, GGUF Q8_0's rule)", Required = true };
        var outDir = new Option<string>("--out") { Description = "output folder (created; files written atomically)", Required = true };
        var dtype = new Option<string?>("--dtype") { Description = "dtype of the tensors that stay unquantized (norms, encoders): f32, bf16 or f16 (default f32)" };
        var keepEmb = CommonOptions.KeepEmbeddings();
        var cmd = new Command("quantize", "Quantize a model folder's language model (self- and cross-attention, MLPs, embedding and head) to q8 and save it as safetensors that load directly; see docs/QUANTIZATION.md.")
        { model, to, outDir, dtype, keepEmb };
        cmd.SetAction(p => CommonOptions.Guard(io, () =>
        {
            string dir = p.GetValue(model)!, dst = p.GetValue(outDir)!;
            if (!Directory.Exists(dir)) throw new CliException($"{dir}: model folder not found.");
            if (Path.GetFullPath(dir).TrimEnd('/') == Path.GetFullPath(dst).TrimEnd('/')) throw new CliException("--out must differ from --model.");
            var q = CommonOptions.ParseQuantize(p.GetValue(to));
            if (q == WeightQuantization.None) throw new CliException("--to must name a quantization (q8).");
            var dt = p.GetValue(dtype) is string d ? ParseDType(d) : ScalarType.Float32;
            var options = new LoadOptions { Device = CPU, DType = dt, Quantize = q, QuantizeEmbeddings = !p.GetValue(keepEmb) };
            string kind;
            if (VideoLanguageModel.IsVideoModelDirectory(dir))
            {
                using var m = VideoLanguageModel.FromPretrained(dir, options);
                m.Save(dst);
                kind = "video";
            }
            else if (IsModelType(dir, "mllama"))
            {
                using var m = VisionLanguageModel.FromPretrained(dir, options);
                m.Save(dst);
                kind = "image";
            }
            else if (IsModelType(dir, "llama3_speech"))
            {
                using var m = SpeechLanguageModel.FromPretrained(dir, options);
                m.Save(dst);
                kind = "speech";
            }
            else
            {
                if (!File.Exists(Path.Combine(dir, "config.json")))
                    throw new CliException($"{dir}: no config.json; convert a Meta-layout folder to the Hugging Face layout first (mm convert --to hf).");
                using var m = LlamaForCausalLM.FromPretrained(dir, options);
                m.Save(dst);
                kind = "text";
            }
            int copied = CopySidecars(dir, dst);
            long bytes = Directory.GetFiles(dst, "*.safetensors").Sum(f => new FileInfo(f).Length);
            io.Out.WriteLine($"wrote {dst}: {kind} model, q8 weights, {bytes / 1e6:F1} MB of safetensors; {copied} other file(s) copied");
            return 0;
        }));
        return cmd;
    }

    static ScalarType ParseDType(string d)
    {
        try { return SafeTensorDType.ParseUser(d); }
        catch (ArgumentException e) { throw new CliException(e.Message); }
    }

    static bool IsModelType(string dir, string type)
    {
        string cfg = Path.Combine(dir, "config.json");
        if (!File.Exists(cfg)) return false;
        return LlamaConfigJson.ReadObject(cfg)["model_type"] is System.Text.Json.Nodes.JsonValue v && v.TryGetValue(out string? s) && s == type;
    }

    /// <summary>Copies the folder's other files (tokenizer, prompt format, notes) that saving did not write.</summary>
    static int CopySidecars(string src, string dst)
    {
        int n = 0;
        foreach (var f in Directory.GetFiles(src))
        {
            string name = Path.GetFileName(f);
            if (name.EndsWith(".safetensors", StringComparison.Ordinal) || name.EndsWith(".safetensors.index.json", StringComparison.Ordinal)
                || File.Exists(Path.Combine(dst, name))) continue;
            File.Copy(f, Path.Combine(dst, name));
            n++;
        }
        return n;
    }
}

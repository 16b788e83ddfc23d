using System.CommandLine;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Tools.Mm.Commands;

/// <summary>Image-model commands: <c>vision-init</c> (random-weight Llama 3.2 Vision checkpoint) and <c>vision-generate</c> (reply about images).</summary>
public static class VisionCommands
{
    /// <summary>All vision commands.</summary>
    public static IEnumerable<Command> All(CliIO io) => new[] { Init(io), Generate(io) };

    static Command Init(CliIO io)
    {
        var config = new Option<string>("--config") { Description = $"preset ({string.Join(", ", VisionPresets.Names)}) or an HF Mllama config.json path", Required = true };
        var seed = new Option<long>("--seed") { Description = "random seed of the weights", DefaultValueFactory = _ => 0 };
        var outDir = new Option<string>("--out") { Description = "output folder", Required = true };
        var dtype = new Option<string>("--dtype") { Description = "stored dtype: f32, bf16 or f16", DefaultValueFactory = _ => "f32" };
        var cmd = new Command("vision-init", "Write a random-weight Llama 3.2 Vision checkpoint (HF MllamaForConditionalGeneration layout, zero adapter gates) from a preset or config.json. Weights are drawn and written one tensor at a time, so the model never has to fit in memory.")
        { config, seed, outDir, dtype };
        cmd.SetAction(p => CommonOptions.Guard(io, () =>
        {
            string c = p.GetValue(config)!;
            var cfg = File.Exists(c) ? VisionLanguageConfigJson.Read(c) : VisionPresets.Get(c);
            string dir = p.GetValue(outDir)!;
            var dt = SafeTensorDType.ParseUser(p.GetValue(dtype)!);
            VisionLanguageModel.SaveRandom(cfg, dir, p.GetValue(seed), dt);
            long n;
            using (var shapes = VisionLanguageModel.Create(cfg, torch.device(DeviceType.META), dt)) n = shapes.ParameterCount();
            TextCommands.CopyTokenizer(null, cfg.Text.VocabSize, dir);
            io.Out.WriteLine($"wrote {dir} ({n:N0} parameters)");
            return 0;
        }));
        return cmd;
    }

    static Command Generate(CliIO io)
    {
        var model = CommonOptions.Model();
        var images = new Option<string[]>("--image") { Description = "image file (PNG, JPEG, BMP, GIF, WebP); repeat for several", Required = true, AllowMultipleArgumentsPerToken = false };
        var prompt = new Option<string>("--prompt") { Description = "user prompt; <|image|> marks where each image goes (default: all images first)", Required = true };
        var hf = new Option<bool>("--hf-cross-attention") { Description = "transformers behaviour for text before the first image (default: Meta's reference)" };
        var whiteAlpha = new Option<bool>("--alpha-on-white") { Description = "composite transparent images on white (HF) instead of dropping alpha (Meta)" };
        var stats = new Option<bool>("--stats") { Description = "print timings and peak memory as one JSON line on stderr" };
        var gen = GenerationCliOptions.Create();
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        var quantize = CommonOptions.Quantize();
        var keepEmb = CommonOptions.KeepEmbeddings();
        var cmd = new Command("vision-generate", "Reply to a prompt about one or more images (Llama 3.2 Vision Instruct chat format), streaming tokens to stdout.")
        { model, images, prompt, hf, whiteAlpha, stats, device, dtype, quantize, keepEmb };
        gen.AddTo(cmd);
        cmd.SetAction(p => CommonOptions.Guard(io, () =>
        {
            var (dev, dt) = CommonOptions.DeviceAndDType(p.GetValue(device)!, p.GetValue(dtype));
            var options = gen.Read(p);
            var alpha = p.GetValue(whiteAlpha) ? AlphaHandling.CompositeOnWhite : AlphaHandling.Drop;
            var clock = new FirstTokenClock();
            var pics = p.GetValue(images)!.Select(f => ImageLoader.Load(f, alpha)).ToList();
            double imagesS = clock.Elapsed;
            using var m = VisionLanguageModel.FromPretrained(p.GetValue(model)!, CommonOptions.Load(dev, dt, p.GetValue(quantize), p.GetValue(keepEmb)));
            double loadS = clock.Elapsed - imagesS;
            m.HfCompatibleCrossAttention = p.GetValue(hf);
            var dec = m.Tokenizer.NewStreamingDecoder();
            var r = m.Generate(pics, p.GetValue(prompt)!, options, id => { clock.Token(); io.Out.Write(dec.Push(id)); io.Out.Flush(); });
            double firstS = clock.FirstTokenSeconds;
            io.Out.WriteLine(dec.Flush());
            if (p.GetValue(stats)) io.Err.WriteLine(TextCommands.StatsJson(r, loadS, firstS, encoder: true));
            return 0;
        }));
        return cmd;
    }
}

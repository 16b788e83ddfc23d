using System.CommandLine;
using System.Text.Json.Nodes;
using Llama3.Multimodal.Speech;
using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Tools.Mm.Commands;

/// <summary>Speech commands: <c>transcribe</c> (ASR/AST from an audio file) and <c>speech-init</c> (random-weight speech model).</summary>
public static class SpeechCommands
{
    /// <summary>All speech commands.</summary>
    public static IEnumerable<Command> All(CliIO io) => new[] { Transcribe(io), Init(io) };

    static Command Transcribe(CliIO io)
    {
        var model = new Option<string>("--model") { Description = "speech model folder (config.json with model_type llama3_speech + safetensors)", Required = true };
        var audio = new Argument<string>("audio") { Description = "audio file: WAV (read directly) or any format ffmpeg decodes" };
        var language = new Option<string>("--language") { Description = "output language name, e.g. English, French", DefaultValueFactory = _ => "English" };
        var translate = new Option<bool>("--translate") { Description = "translate into --language (AST prompt) instead of transcribing (ASR prompt)" };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "most tokens per ≤ 60 s segment", DefaultValueFactory = _ => 256 };
        var stats = new Option<bool>("--stats") { Description = "print timings and the real-time factor as one JSON line on stderr" };
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        var quantize = CommonOptions.Quantize();
        var keepEmb = CommonOptions.KeepEmbeddings();
        var cmd = new Command("transcribe", "Transcribe (or translate) speech in an audio file with a speech model.")
        { model, audio, language, translate, maxNew, stats, device, dtype, quantize, keepEmb };
        cmd.SetAction(p => CommonOptions.Guard(io, () =>
        {
            var (dev, dt) = CommonOptions.DeviceAndDType(p.GetValue(device)!, p.GetValue(dtype));
            string dir = p.GetValue(model)!;
            if (!Directory.Exists(dir)) throw new CliException($"{dir}: model folder not found.");
            var clock = new FirstTokenClock();
            using var m = SpeechLanguageModel.FromPretrained(dir, CommonOptions.Load(dev, dt, p.GetValue(quantize), p.GetValue(keepEmb)));
            double load = clock.Elapsed;
            var options = new GenerationOptions { MaxNewTokens = p.GetValue(maxNew) }.Validate();
            string lang = p.GetValue(language)!;
            string file = p.GetValue(audio)!;
            double started = clock.Elapsed;
            var r = p.GetValue(translate) ? m.Translate(file, lang, options) : m.Transcribe(file, lang, options);
            io.Out.WriteLine(r.Text);
            if (p.GetValue(stats))
                io.Err.WriteLine(new JsonObject
                {
                    ["model_load_s"] = Math.Round(load, 3),
                    ["load_s"] = Math.Round(load, 3),
                    ["first_token_s"] = Math.Round(started + r.FirstTokenSeconds, 3),
                    ["audio_s"] = Math.Round(r.AudioSeconds, 3),
                    ["segments"] = r.Segments.Count,
                    ["audio_load_s"] = Math.Round(r.LoadSeconds, 4),
                    ["features_s"] = Math.Round(r.FeatureSeconds, 4),
                    ["encoder_s"] = Math.Round(r.EncoderSeconds, 4),
                    ["prefill_s"] = Math.Round(r.PrefillSeconds, 4),
                    ["decode_s"] = Math.Round(r.DecodeSeconds, 4),
                    ["generated_tokens"] = r.GeneratedTokens,
                    ["decode_tokens_per_s"] = Math.Round(r.DecodeSteps / Math.Max(r.DecodeSeconds, 1e-9), 2),
                    ["total_s"] = Math.Round(r.TotalSeconds, 4),
                    ["real_time_factor"] = Math.Round(r.RealTimeFactor, 5),
                    ["peak_rss_mb"] = Math.Round(CommonOptions.PeakRssBytes() / 1048576.0, 1),
                }.ToJsonString());
            return 0;
        }));
        return cmd;
    }

    static Command Init(CliIO io)
    {
        var preset = new Option<string>("--preset") { Description = $"speech preset ({string.Join(", ", SpeechPresets.Names)})", DefaultValueFactory = _ => "tiny-speech" };
        var seed = new Option<long>("--seed") { Description = "random seed of the weights", DefaultValueFactory = _ => 0 };
        var outDir = new Option<string>("--out") { Description = "output folder", Required = true };
        var dtype = new Option<string>("--dtype") { Description = "stored dtype: f32, bf16 or f16", DefaultValueFactory = _ => "f32" };
        var cmd = new Command("speech-init", "Write a random-weight speech model folder (config.json, model.safetensors, tokenizer) from a preset.")
        { preset, seed, outDir, dtype };
        cmd.SetAction(p => CommonOptions.Guard(io, () =>
        {
            var cfg = SpeechPresets.Get(p.GetValue(preset)!);
            string dir = p.GetValue(outDir)!;
            using var m = SpeechLanguageModel.Create(cfg, CPU, ScalarType.Float32, p.GetValue(seed));
            m.Save(dir, SafeTensorDType.ParseUser(p.GetValue(dtype)!));
            TextCommands.CopyTokenizer(null, cfg.Text.VocabSize, dir);
            io.Out.WriteLine($"wrote {dir} ({m.ParameterCount():N0} parameters)");
            return 0;
        }));
        return cmd;
    }
}

using System.CommandLine;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Video;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Tools.Mm.Commands;

/// <summary>Video-model commands: <c>video-init</c> (random-weight video model) and <c>video-generate</c> (reply about a clip).</summary>
public static class VideoCommands
{
    /// <summary>All video commands.</summary>
    public static IEnumerable<Command> All(CliIO io) => new[] { Init(io), Generate(io) };

    static Command Init(CliIO io)
    {
        var preset = new Option<string>("--config") { Description = $"video preset ({string.Join(", ", VideoPresets.Names)})", Required = true };
        var seed = new Option<long>("--seed") { Description = "random seed of the weights", DefaultValueFactory = _ => 0 };
        var outDir = new Option<string>("--out") { Description = "output folder", Required = true };
        var dtype = new Option<string>("--dtype") { Description = "stored dtype: f32, bf16 or f16", DefaultValueFactory = _ => "f32" };
        var cmd = new Command("video-init", "Write a random-weight video model (the image model's checkpoint plus video_model.* and video_config.json; video gates at zero).")
        { preset, seed, outDir, dtype };
        cmd.SetAction(p => CommonOptions.Guard(io, () =>
        {
            var cfg = VideoPresets.Get(p.GetValue(preset)!);
            string dir = p.GetValue(outDir)!;
            long n;
            using (var model = VideoLanguageModel.Create(cfg, CPU, ScalarType.Float32).InitializeWeights(p.GetValue(seed)))
            {
                model.Save(dir, SafeTensorDType.ParseUser(p.GetValue(dtype)!));
                n = model.ParameterCount();
            }
            TextCommands.CopyTokenizer(null, cfg.Base.Text.VocabSize, dir);
            io.Out.WriteLine($"wrote {dir} ({n:N0} parameters)");
            return 0;
        }));
        return cmd;
    }

    static Command Generate(CliIO io)
    {
        var model = CommonOptions.Model();
        var video = new Option<string>("--video") { Description = "video file (mp4, webm, mkv, avi, gif, …; decoded with ffmpeg)", Required = true };
        var prompt = new Option<string>("--prompt") { Description = "user prompt", Required = true };
        var stats = new Option<bool>("--stats") { Description = "print timings and peak memory as one JSON line on stderr" };
        var gen = GenerationCliOptions.Create();
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        var quantize = CommonOptions.Quantize();
        var keepEmb = CommonOptions.KeepEmbeddings();
        var cmd = new Command("video-generate", "Reply to a prompt about a video clip (frames sampled uniformly, aggregated in time, read by the video cross-attention layers).")
        { model, video, prompt, stats, device, dtype, quantize, keepEmb };
        gen.AddTo(cmd);
        cmd.SetAction(p => CommonOptions.Guard(io, () =>
        {
            var (dev, dt) = CommonOptions.DeviceAndDType(p.GetValue(device)!, p.GetValue(dtype));
            var options = gen.Read(p);
            string clip = p.GetValue(video)!;
            if (!File.Exists(clip)) throw new CliException($"{clip}: video file not found.");
            var clock = new FirstTokenClock();
            using var m = VideoLanguageModel.FromPretrained(p.GetValue(model)!, CommonOptions.Load(dev, dt, p.GetValue(quantize), p.GetValue(keepEmb)));
            double loadS = clock.Elapsed;
            var dec = m.Tokenizer.NewStreamingDecoder();
            var r = m.Generate(clip, p.GetValue(prompt)!, options, id => { clock.Token(); io.Out.Write(dec.Push(id)); io.Out.Flush(); });
            double firstS = clock.FirstTokenSeconds;
            io.Out.WriteLine(dec.Flush());
            if (p.GetValue(stats)) io.Err.WriteLine(TextCommands.StatsJson(r, loadS, firstS));
            return 0;
        }));
        return cmd;
    }
}

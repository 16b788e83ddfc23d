using System.Diagnostics;
using System.Text.Json.Nodes;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Training;
using Llama3.Multimodal.Demo;
using TorchSharp;
using static TorchSharp.torch;

// Training throughput of the text recipes at the tiny preset and of the multimodal recipes at the demo shapes (CPU,
// f32), with model-FLOPs utilisation against the f32 GEMM peak measured in the same process, and memory.
// Run: dotnet run -c Release --project bench/Llama3.Multimodal.Bench.Training [-- steps [threads [all|text|multimodal|RECIPE]]]
// The data loader alone (decode + preprocess, no model): ... -- loader [passes [threads]]
// Training step rate at real input sizes beside the loader, demo and llama3.2-1b decoders: ... -- bottleneck [steps [threads]]
if (args.Length > 0 && args[0] == "bottleneck")
{
    if (args.Length > 2) torch.set_num_threads(int.Parse(args[2]));
    Console.WriteLine($"Llama3.Multimodal bottleneck bench — {DeviceSpec.Backend()}, {Environment.ProcessorCount} logical cores, {DateTime.UtcNow:u}; load average at start: {(File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "n/a")}");
    Console.WriteLine($"command: dotnet run -c Release --project bench/Llama3.Multimodal.Bench.Training -- {string.Join(' ', args)}");
    var sw = Stopwatch.StartNew();
    Llama3.Multimodal.Bench.Training.BottleneckBench.Run(args.Length > 1 ? Math.Max(2, int.Parse(args[1])) : 3);
    Console.WriteLine($"total {sw.Elapsed.TotalSeconds:F0} s");
    return;
}
if (args.Length > 0 && args[0] == "loader")
{
    if (args.Length > 2) torch.set_num_threads(int.Parse(args[2]));
    Console.WriteLine($"Llama3.Multimodal loader bench — {Environment.ProcessorCount} logical cores, {DateTime.UtcNow:u}; load average at start: {(File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "n/a")}");
    Llama3.Multimodal.Bench.Training.LoaderBench.Run(args.Length > 1 ? int.Parse(args[1]) : 2);
    return;
}
int steps = args.Length > 0 ? int.Parse(args[0]) : 12;
if (args.Length > 1) torch.set_num_threads(int.Parse(args[1]));   // on a shared, oversubscribed CPU 1 thread is far faster
Console.WriteLine($"Llama3.Multimodal training bench — {DeviceSpec.Backend()}, {Environment.ProcessorCount} logical cores, {DateTime.UtcNow:u}");
Console.WriteLine($"command: dotnet run -c Release --project bench/Llama3.Multimodal.Bench.Training -- {string.Join(' ', args)}");
Console.WriteLine($"load average at start: {(File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "n/a")}");

string only = args.Length > 2 ? args[2] : "all";
double peak = GemmPeak();
Console.WriteLine($"f32 GEMM peak (1024³ matmul, best of 5): {peak / 1e9:F1} GFLOP/s");

string data = Path.Combine(Path.GetTempPath(), "l3mm-bench-training");
Llama3.Multimodal.Demo.SyntheticText.Write(data, 1, documents: 2000, dialogs: 256, pairs: 256);

var cases = new (string Recipe, string Label, string[] Sets)[]
{
    ("text-pretrain", "tiny preset, Llama 3 tokenizer (vocab 128256), seq 256, 4×256 tokens/step",
        new[] { "tokenizer=llama3", "data.seq_len=256", "batch.micro=4", "batch.global=1024" }),
    ("text-pretrain", "tiny preset shape, byte vocab (264), seq 256, 4×256 tokens/step",
        new[] { "data.seq_len=256", "batch.micro=4", "batch.global=1024" }),
    ("text-pretrain", "tiny preset shape, byte vocab (264), seq 1024, 4×1024 tokens/step",
        new[] { "data.seq_len=1024", "batch.micro=4", "batch.global=4096", "model.max_position_embeddings=2048" }),
    ("sft", "tiny, byte vocab, 8 dialogs/step", new[] { "batch.micro=8", "batch.global=8" }),
    ("dpo", "tiny, byte vocab, 8 pairs/step (policy + frozen reference)", new[] { "batch.micro=8", "batch.global=8" }),
    ("reward-model", "tiny, byte vocab, 8 pairs/step", new[] { "batch.micro=8", "batch.global=8" }),
};
foreach (var (recipe, label, sets) in only is "all" or "text" ? cases : Array.Empty<(string, string, string[])>())
{
    string outDir = Path.Combine(Path.GetTempPath(), "l3mm-bench-run-" + Guid.NewGuid().ToString("N")[..8]);
    using var r = RecipeRegistry.Create(recipe);
    var all = sets.Concat(new[] { $"optim.total_steps={steps}", "optim.warmup_steps=1", "train.save_every=0", "train.eval_every=0" }).ToArray();
    var cfg = ConfigLoader.Load(Llama3.Multimodal.Demo.DemoConfigs.For(recipe), Path.Combine(data, recipe + ".json"), all);
    using var t = new Trainer(RecipeRegistry.Create(recipe), cfg, outDir, new TrainerOptions { Progress = null, Plot = false, TensorBoard = false });
    long nonEmbedding = t.Recipe.Model.named_parameters().Where(p => !p.name.Contains("embed_tokens")).Sum(p => p.parameter.numel());
    var lm = (t.Recipe as TextRecipe)!.Lm.Config;
    t.Run();
    var (lines, secs, tokens, samples) = Measured(outDir);
    var b = lines[^1];
    int seq = cfg.Data.SeqLen;
    // Model FLOPs per token (PaLM appendix B): 6·N (N = non-embedding parameters incl. the output head) + 12·L·D·T for attention.
    long head = lm.TieWordEmbeddings ? (long)lm.VocabSize * lm.HiddenSize : 0;
    double flopsPerToken = 6.0 * (nonEmbedding + head) + 12.0 * lm.NumLayers * lm.HiddenSize * seq;
    if (recipe == "dpo") flopsPerToken *= 4.0 / 3;   // + a forward of the reference model
    double tps = tokens / secs;
    Console.WriteLine($"{recipe,-14} {label}");
    Console.WriteLine($"    {tps,10:F0} tokens/s  {samples / secs,8:F1} samples/s  {secs / (lines.Count - 2) * 1000,8:F1} ms/step  " +
        $"MFU {tps * flopsPerToken / peak * 100:F1}% of measured GEMM peak  loss {lines[0]["loss"]!.GetValue<double>():F3} → {b["loss"]!.GetValue<double>():F3}");
    Directory.Delete(outDir, true);
}
Console.WriteLine($"peak working set (text recipes): {Process.GetCurrentProcess().PeakWorkingSet64 / (1 << 20)} MiB");

// Multimodal recipes at the demo shapes (tiny decoder + tiny-vision / tiny-video / tiny-speech), fresh weights, on data
// from the demo makers. Model FLOPs count the matrix products of every weight matrix over the positions it is applied
// to in the measured micro-batches (attention score products and BEST-RQ's softmax heads, which see only the masked
// frames, are left out, so the MFU is a lower bound): forward 2·n·positions, ×3 for a trained
// matrix (forward, input gradient, weight gradient), ×2 for a frozen decoder matrix (gradients pass through it to
// trained layers), ×1 for a frozen encoder in front of everything trained.
string media = Path.Combine(Path.GetTempPath(), "l3mm-bench-media");
if (!File.Exists(Path.Combine(media, ".done")))
{
    DemoData.Write("images", media, 1, count: 64, evalCount: 8);
    DemoData.Write("speech", media, 1, count: 32, evalCount: 4);
    DemoData.Write("video", media, 1, count: 16, evalCount: 4);
    File.WriteAllText(Path.Combine(media, ".done"), "");
}
// 16 clips at 4 per step: from step 5 on, the video recipe's frame cache serves every clip (the second case decodes
// every clip through ffmpeg at every step, as with data too large for video.frame_cache_mb).
var mmCases = new (string Recipe, string Label, string[] Extra)[]
{
    ("vision-stage1", "tiny decoder + tiny-vision (112-px tiles, ≤1 tile), 8 images/step", Array.Empty<string>()),
    ("vision-stage2", "tiny decoder + tiny-vision (≤4 tiles), 8 images/step", Array.Empty<string>()),
    ("video", "tiny decoder + tiny-video (8 frames/clip), 4 clips/step, frame cache", Array.Empty<string>()),
    ("video", "tiny decoder + tiny-video (8 frames/clip), 4 clips/step, no frame cache", new[] { "video.frame_cache_mb=0" }),
    ("speech-stage1", "tiny-speech Conformer, BEST-RQ, 8 utterances/step", Array.Empty<string>()),
    ("speech-stage2", "tiny-speech encoder + adapter under a frozen tiny decoder, 8 utterances/step", Array.Empty<string>()),
};
foreach (var (recipe, label, extra) in mmCases.Where(c => only is "all" or "multimodal" || c.Recipe == only))
{
    string outDir = Path.Combine(Path.GetTempPath(), "l3mm-bench-run-" + Guid.NewGuid().ToString("N")[..8]);
    long rssBefore = Process.GetCurrentProcess().WorkingSet64;
    using var r = RecipeRegistry.Create(recipe);
    var sets = new[] { "model.init_from=null", $"optim.total_steps={steps}", "optim.warmup_steps=1",
        "train.save_every=0", "train.eval_every=0", "batch.micro=" + (recipe == "video" ? 2 : 4), "batch.global=" + (recipe == "video" ? 4 : 8) }.Concat(extra).ToArray();
    if (recipe == "speech-stage2") sets = sets.Append("speech.finetune.encoder_from=null").ToArray();
    var cfg = ConfigLoader.Load(Llama3.Multimodal.Demo.DemoConfigs.For(recipe), Path.Combine(media, recipe + ".json"), sets);
    using var t = new Trainer(RecipeRegistry.Create(recipe), cfg, outDir, new TrainerOptions { Progress = null, Plot = false, TensorBoard = false });
    double flopsPerSample = ModelFlopsPerSample(t, cfg);
    t.Run();
    var (lines, secs, tokens, samples) = Measured(outDir);
    var b = lines[^1];
    double sps = samples / secs;
    Console.WriteLine($"{recipe,-14} {label}");
    Console.WriteLine($"    {sps,8:F1} samples/s  {tokens / secs,10:F0} tokens/s  {secs / (lines.Count - 2) * 1000,8:F1} ms/step  " +
        $"{flopsPerSample / 1e6,8:F1} MFLOP/sample  MFU {sps * flopsPerSample / peak * 100:F1}%  " +
        $"working set {Process.GetCurrentProcess().WorkingSet64 / (1 << 20)} MiB (+{(Process.GetCurrentProcess().WorkingSet64 - rssBefore) / (1 << 20)})  " +
        $"loss {lines[0]["loss"]!.GetValue<double>():F3} → {b["loss"]!.GetValue<double>():F3}");
    Directory.Delete(outDir, true);
}
Console.WriteLine($"peak working set (all): {Process.GetCurrentProcess().PeakWorkingSet64 / (1 << 20)} MiB");

// The run's logged steps, and seconds, tokens and samples between the second and the last (skipping allocator and
// thread-pool warm-up).
static (List<JsonObject> Lines, double Secs, long Tokens, long Samples) Measured(string outDir)
{
    var lines = File.ReadLines(Path.Combine(outDir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).Where(o => o["loss"] is not null).ToList();
    var a = lines[1]; var b = lines[^1];
    double D(JsonObject o, string k) => o[k]!.GetValue<double>();
    return (lines, D(b, "elapsed_s") - D(a, "elapsed_s"), (long)(D(b, "tokens") - D(a, "tokens")), (long)(D(b, "samples") - D(a, "samples")));
}

// Matrix-product FLOPs of one training sample, averaged over the first 4 micro-batches of the recipe's data.
static double ModelFlopsPerSample(Trainer t, TrainConfig cfg)
{
    var recipe = t.Recipe;
    double total = 0; long samples = 0;
    using var source = recipe.OpenData(false, DataCursor.Start);
    for (int i = 0; i < 4; i++)
    {
        using var mb = source.Next(cfg.Data.SeqLen);
        samples += mb.Samples;
        double text = mb.Tensors.TryGetValue("input_ids", out var ids) ? ids.numel() : 0;
        double image = 0, audio = 0, speech = 0;
        if (mb.Tensors.TryGetValue("pixel_values", out var px))
        {
            // [..., tiles, 3, H, W]: every tile is (H/p)² patches + the class token, padded to a multiple of 8.
            long h = px.shape[^2], patch = 14;   // the tiny-vision and tiny-video encoders use 14-px patches
            long perTile = (h / patch) * (h / patch) + 1; perTile = (perTile + 7) / 8 * 8;
            image = px.numel() / (3 * px.shape[^2] * px.shape[^1]) * (double)perTile;
        }
        if (mb.Tensors.TryGetValue("features", out var f)) audio = f.shape[0] * f.shape[1] / 4.0;   // encoder frames (stride 4)
        if (mb.Tensors.TryGetValue("speech_spans", out var sp)) speech = sp.sum().item<long>();       // adapter frames (80 ms)
        foreach (var (name, p) in recipe.Model.named_parameters())
        {
            if (p.dim() < 2 || (name.Contains("embed") && !name.Contains("patch_embedding")) || name.Contains("quantizer") || name.Contains("latents") || name.Contains("best_rq.heads")) continue;
            double positions =
                name.StartsWith("language_model.", StringComparison.Ordinal) && !name.Contains("cross_attn.k_proj") && !name.Contains("cross_attn.v_proj") ? text
                : name.StartsWith("vision_model.", StringComparison.Ordinal) || name.StartsWith("multi_modal_projector", StringComparison.Ordinal)
                  || name.Contains("aggregator") || name.Contains("cross_attn.") ? image
                : name.StartsWith("speech_model.encoder", StringComparison.Ordinal) ? 2 * speech
                : name.StartsWith("speech_model.adapter", StringComparison.Ordinal) ? speech
                : audio;
            double factor = p.requires_grad ? 3 : name.StartsWith("language_model.", StringComparison.Ordinal) ? 2 : 1;
            total += 2.0 * p.numel() * positions * factor;
        }
    }
    return total / Math.Max(1, samples);
}

static double GemmPeak()
{
    using var a = torch.randn(1024, 1024); using var b = torch.randn(1024, 1024);
    double best = 0;
    for (int i = 0; i < 6; i++)
    {
        var sw = Stopwatch.StartNew();
        using var c = a.matmul(b);
        _ = c[0, 0].item<float>();
        double s = sw.Elapsed.TotalSeconds;
        if (i > 0) best = Math.Max(best, 2.0 * 1024 * 1024 * 1024 / s);
    }
    return best;
}

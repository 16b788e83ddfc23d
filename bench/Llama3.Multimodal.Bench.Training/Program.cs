using System.Diagnostics;
using System.Text.Json.Nodes;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Training;
using TorchSharp;
using static TorchSharp.torch;

// Training throughput of the text recipes at the tiny preset (CPU, f32), with model-FLOPs utilisation against the
// f32 GEMM peak measured in the same process, and peak memory.
// Run: dotnet run -c Release --project bench/Llama3.Multimodal.Bench.Training [-- steps [threads]]
int steps = args.Length > 0 ? int.Parse(args[0]) : 12;
if (args.Length > 1) torch.set_num_threads(int.Parse(args[1]));   // on a shared, oversubscribed CPU 1 thread is far faster
Console.WriteLine($"Llama3.Multimodal training bench — {DeviceSpec.Backend()}, {Environment.ProcessorCount} logical cores, {DateTime.UtcNow:u}");
Console.WriteLine($"command: dotnet run -c Release --project bench/Llama3.Multimodal.Bench.Training -- {string.Join(' ', args)}");
Console.WriteLine($"load average at start: {(File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "n/a")}");

double peak = GemmPeak();
Console.WriteLine($"f32 GEMM peak (1024³ matmul, best of 5): {peak / 1e9:F1} GFLOP/s");

string data = Path.Combine(Path.GetTempPath(), "l3mm-bench-training");
SyntheticText.Write(data, 1, documents: 2000, dialogs: 256, pairs: 256);

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
foreach (var (recipe, label, sets) in cases)
{
    string outDir = Path.Combine(Path.GetTempPath(), "l3mm-bench-run-" + Guid.NewGuid().ToString("N")[..8]);
    using var r = RecipeRegistry.Create(recipe);
    var all = sets.Concat(new[] { $"optim.total_steps={steps}", "optim.warmup_steps=1", "train.save_every=0", "train.eval_every=0" }).ToArray();
    var cfg = ConfigLoader.Load(r.DemoConfig(), Path.Combine(data, recipe + ".json"), all);
    using var t = new Trainer(RecipeRegistry.Create(recipe), cfg, outDir, new TrainerOptions { Log = null, Live = false, Plot = false, TensorBoard = false });
    long nonEmbedding = t.Recipe.Model.named_parameters().Where(p => !p.name.Contains("embed_tokens")).Sum(p => p.parameter.numel());
    var lm = (t.Recipe as TextRecipe)!.Lm.Config;
    t.Run();
    var lines = File.ReadLines(Path.Combine(outDir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).Where(o => o["loss"] is not null).ToList();
    // Skip the first two steps (allocator and thread-pool warm-up).
    var a = lines[1]; var b = lines[^1];
    double secs = b["elapsed_s"]!.GetValue<double>() - a["elapsed_s"]!.GetValue<double>();
    long tokens = b["tokens"]!.GetValue<long>() - a["tokens"]!.GetValue<long>();
    long samples = b["samples"]!.GetValue<long>() - a["samples"]!.GetValue<long>();
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
Console.WriteLine($"peak working set: {Process.GetCurrentProcess().PeakWorkingSet64 / (1 << 20)} MiB");

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

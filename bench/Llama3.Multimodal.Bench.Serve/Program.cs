// Serving benchmarks.
//   batching [--model DIR | --preset tiny|medium|demo] [--requests N] [--tokens T] [--max-batch B]
//       N greedy requests of T new tokens each: one after another with TextGenerator, one after another through the
//       continuous batcher (max batch 1), and all at once through the continuous batcher (max batch B).
//   load [--clients N] [--seconds S] [--models DIR,DIR]
//       starts the OpenAI-compatible server on a free loopback port with the shipped demo models (vision, speech) and
//       runs N clients for S seconds, each looping over a text chat, an image caption and a transcription; prints
//       requests/s, p50/p95 latency, completion tokens/s and errors.
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Llama3.Multimodal.Server;
using Llama3.Multimodal.Text;
using TorchSharp;

string mode = args.Length > 0 ? args[0] : "batching";
string Arg(string name, string fallback)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}

string Root()
{
    for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        if (Directory.Exists(Path.Combine(d.FullName, "assets", "models", "demo"))) return d.FullName;
    for (var d = new DirectoryInfo(Environment.CurrentDirectory); d is not null; d = d.Parent)
        if (Directory.Exists(Path.Combine(d.FullName, "assets", "models", "demo"))) return d.FullName;
    throw new DirectoryNotFoundException("assets/models/demo not found; run from the repository.");
}

Console.WriteLine($"threads {torch.get_num_threads()}, cores {Environment.ProcessorCount}, load average {LoadAverage()}");
if (mode == "batching") await Batching();
else if (mode == "load") await Load();
else { Console.Error.WriteLine("modes: batching, load"); return 2; }
return 0;

static string LoadAverage()
{
    try { return File.ReadAllText("/proc/loadavg").Split(' ')[0]; }
    catch (IOException) { return "?"; }
}

async Task Batching()
{
    int n = int.Parse(Arg("--requests", "8")), tokens = int.Parse(Arg("--tokens", "64")), maxBatch = int.Parse(Arg("--max-batch", "8"));
    string preset = Arg("--preset", "medium");
    string? dir = Arg("--model", "") is { Length: > 0 } m ? m : null;
    LlamaForCausalLM model;
    Llama3Tokenizer tok;
    IDisposable? owner = null;
    if (dir is not null || preset == "demo")
    {
        var v = Llama3.Multimodal.Vision.VisionLanguageModel.FromPretrained(dir ?? Path.Combine(Root(), "assets", "models", "demo", "vision"));
        model = v.language_model; tok = v.Tokenizer; owner = v;
        preset = dir ?? "demo vision decoder";
    }
    else
    {
        var cfg = preset == "tiny" ? TextPresets.Get("tiny") : new LlamaConfig
        {
            HiddenSize = 512, NumLayers = 8, NumHeads = 8, NumKvHeads = 4, IntermediateSize = 1536, VocabSize = 32768,
            TieWordEmbeddings = true, MaxPositionEmbeddings = 2048, BosTokenId = 1, EosTokenIds = new[] { 2 }, PadTokenId = 0,
        };
        model = LlamaForCausalLM.Create(cfg).InitializeWeights(1);
        tok = Llama3Tokenizer.Default;
        owner = model;
    }
    var rng = new Random(7);
    var prompts = Enumerable.Range(0, n).Select(_ => (IReadOnlyList<int>)Enumerable.Range(0, 16 + rng.Next(48)).Select(_ => 1 + rng.Next(Math.Min(model.Config.VocabSize, 30000) - 1)).ToList()).ToList();
    var options = new GenerationOptions { MaxNewTokens = tokens, StopTokens = Array.Empty<int>() };
    var gen = new TextGenerator(model, tok);
    gen.Generate(prompts[0], options with { MaxNewTokens = 4 });   // warm-up
    int rounds = int.Parse(Arg("--rounds", "3"));
    // The three ways alternate, round after round, so that a change in machine load hits them alike; best of the rounds.
    var best = new double[3] { double.MaxValue, double.MaxValue, double.MaxValue };
    List<GenerationResult> serial = new(), batched = new();
    long steps = 0;
    var sw = new Stopwatch();
    for (int round = 0; round < rounds; round++)
    {
        for (int k = 0; k < 3; k++)
        {
            int way = (k + round) % 3;
            sw.Restart();
            if (way == 0) serial = prompts.Select(p => gen.Generate(p, options)).ToList();
            else if (way == 1)
            {
                using var one = new ContinuousBatcher(model, tok, maxBatch: 1);
                foreach (var p in prompts) await one.GenerateAsync(p, options);
            }
            else
            {
                using var batcher = new ContinuousBatcher(model, tok, maxBatch: maxBatch);
                batched = (await Task.WhenAll(prompts.Select(p => batcher.GenerateAsync(p, options)))).ToList();
                steps = batcher.Steps;
            }
            best[way] = Math.Min(best[way], sw.Elapsed.TotalSeconds);
        }
    }
    double serialS = best[0], oneS = best[1], batchS = best[2];
    int same = Enumerable.Range(0, n).Count(i => serial[i].Tokens.SequenceEqual(batched[i].Tokens));
    int total = n * tokens;
    Console.WriteLine($"model: {preset} ({model.ParameterCount() / 1e6:0.0} M parameters), {n} requests × {tokens} new tokens, prompts 16–63 tokens, greedy, best of {rounds} alternated rounds");
    Console.WriteLine($"serial, TextGenerator:              {serialS,7:0.00} s  {total / serialS,8:0.0} tokens/s");
    Console.WriteLine($"serial, ContinuousBatcher(1):       {oneS,7:0.00} s  {total / oneS,8:0.0} tokens/s");
    Console.WriteLine($"concurrent, ContinuousBatcher({maxBatch}):  {batchS,7:0.00} s  {total / batchS,8:0.0} tokens/s  ({steps} decode steps for {total - n} decoded rows)");
    Console.WriteLine($"throughput gain over serial TextGenerator: {serialS / batchS:0.00}×; identical greedy outputs: {same}/{n}");
    Console.WriteLine($"load average at the end {LoadAverage()}");
    owner?.Dispose();
}

async Task Load()
{
    int clients = int.Parse(Arg("--clients", "8"));
    double seconds = double.Parse(Arg("--seconds", "20"), System.Globalization.CultureInfo.InvariantCulture);
    string root = Root();
    var dirs = Arg("--models", "") is { Length: > 0 } ms ? ms.Split(',') : new[] { Path.Combine(root, "assets", "models", "demo", "vision"), Path.Combine(root, "assets", "models", "demo", "speech") };
    var models = dirs.Select(d => ServedModel.Load(d, maxBatch: 8)).ToList();
    await using var server = await OpenAIServer.StartAsync(models, new OpenAIServerOptions { Port = 0, MaxQueue = 256 }, ownsModels: true);
    using var http = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromMinutes(5) };
    string png = Convert.ToBase64String(File.ReadAllBytes(Path.Combine(root, "assets", "demo", "images", "000002.png")));
    byte[] wav = File.ReadAllBytes(Path.Combine(root, "assets", "demo", "speech", "000000.wav"));
    var images = Directory.GetFiles(Path.Combine(root, "assets", "demo", "images"), "*.png").OrderBy(x => x).Take(8).Select(f => Convert.ToBase64String(File.ReadAllBytes(f))).ToArray();
    string[] words = { "a red", "two large", "the number", "a small green", "three blue", "a tiny yellow" };
    var kinds = new[] { "text", "image", "transcription" };
    var lat = kinds.ToDictionary(k => k, _ => new List<double>());
    var tokensByKind = kinds.ToDictionary(k => k, _ => 0L);
    int errors = 0;
    var sample = new List<string>();
    var until = DateTime.UtcNow.AddSeconds(seconds);
    var wall = Stopwatch.StartNew();
    await Task.WhenAll(Enumerable.Range(0, clients).Select(async c =>
    {
        int i = c;
        while (DateTime.UtcNow < until)
        {
            string kind = kinds[i % 3];
            var sw = Stopwatch.StartNew();
            HttpResponseMessage r;
            if (kind == "transcription")
            {
                var form = new MultipartFormDataContent();
                var file = new ByteArrayContent(wav);
                file.Headers.ContentType = new MediaTypeHeaderValue("audio/wav");
                form.Add(file, "file", "a.wav");
                form.Add(new StringContent("speech"), "model");
                r = await http.PostAsync("v1/audio/transcriptions", form);
            }
            else
            {
                string json = kind == "text"
                    ? $$$"""{"model":"vision","temperature":0,"max_tokens":16,"messages":[{"role":"user","content":"{{{words[i % words.Length]}}}"}]}"""
                    : $$$"""{"model":"vision","temperature":0,"max_tokens":24,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,{{{images[i % images.Length]}}}"}}]}]}""";
                r = await http.PostAsync("v1/chat/completions", new StringContent(json, Encoding.UTF8, "application/json"));
            }
            string body = await r.Content.ReadAsStringAsync();
            double ms = sw.Elapsed.TotalMilliseconds;
            lock (lat)
            {
                if (!r.IsSuccessStatusCode) { errors++; if (sample.Count < 3) sample.Add($"{(int)r.StatusCode} {body}"); }
                else
                {
                    lat[kind].Add(ms);
                    if (kind != "transcription")
                        tokensByKind[kind] += JsonDocument.Parse(body).RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt64();
                }
            }
            i++;
        }
    }));
    double elapsed = wall.Elapsed.TotalSeconds;
    static double P(List<double> xs, double q) { if (xs.Count == 0) return double.NaN; var s = xs.OrderBy(x => x).ToList(); return s[Math.Min(s.Count - 1, (int)Math.Ceiling(q * s.Count) - 1)]; }
    var all = lat.Values.SelectMany(x => x).ToList();
    Console.WriteLine($"{clients} clients, {elapsed:0.0} s, models {string.Join(", ", server.Models.Select(m => m.Id))}");
    Console.WriteLine($"{"kind",-14} {"requests",8} {"req/s",7} {"p50 ms",8} {"p95 ms",8} {"tokens/s",9}");
    foreach (var k in kinds)
        Console.WriteLine($"{k,-14} {lat[k].Count,8} {lat[k].Count / elapsed,7:0.00} {P(lat[k], 0.5),8:0} {P(lat[k], 0.95),8:0} {(k == "transcription" ? "" : (tokensByKind[k] / elapsed).ToString("0.0")),9}");
    Console.WriteLine($"{"all",-14} {all.Count,8} {all.Count / elapsed,7:0.00} {P(all, 0.5),8:0} {P(all, 0.95),8:0} {tokensByKind.Values.Sum() / elapsed,9:0.0}");
    var vision = server.Models.First(m => m.Id == "vision").Batcher;
    Console.WriteLine($"errors: {errors}{(sample.Count > 0 ? " — " + string.Join(" | ", sample) : "")}");
    Console.WriteLine($"vision decoder: {vision.Steps} decode steps for {vision.RowSteps} rows (mean batch {(vision.Steps == 0 ? 0 : (double)vision.RowSteps / vision.Steps):0.00})");
    Console.WriteLine($"load average at the end {LoadAverage()}");
    if (errors > 0) Environment.ExitCode = 1;
}

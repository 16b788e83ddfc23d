// Wall time of the synthetic data makers and the BPE trainer.
// Run: dotnet run -c Release --project bench/Llama3.Multimodal.Bench.SyntheticData -- [images] [utterances] [clips] [outDir]
using System.Diagnostics;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Demo;
using Llama3.Multimodal.Training;

int images = args.Length > 0 ? int.Parse(args[0]) : 2000;
int utterances = args.Length > 1 ? int.Parse(args[1]) : 500;
int clips = args.Length > 2 ? int.Parse(args[2]) : 200;
string root = args.Length > 3 ? args[3] : Path.Combine(Path.GetTempPath(), "mm-synth-bench");
int threads = Environment.ProcessorCount;
Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}; parallelism {threads}");

void Time(string what, Func<string> run)
{
    var sw = Stopwatch.StartNew();
    string detail = run();
    Console.WriteLine($"{what,-40} {sw.Elapsed.TotalSeconds,8:F1} s  {detail}");
}

Time($"images {images} x 64x64", () => $"{ImageDataMaker.Make(new ImageMakerOptions(images, 1, 64, MaxParallelism: threads), Path.Combine(root, "img64")).Count} files");
Time($"images {images} x 112x112", () => $"{ImageDataMaker.Make(new ImageMakerOptions(images, 1, 112, MaxParallelism: threads), Path.Combine(root, "img112")).Count} files");
Time($"speech {utterances} utterances", () => $"{SpeechDataMaker.Make(new SpeechMakerOptions(utterances, 1, MaxParallelism: threads), Path.Combine(root, "speech")).Count} files");
Time($"video {clips} clips 3 s 8 fps 64x64", () => $"{VideoDataMaker.Make(new VideoMakerOptions(clips, 1, 64, MaxParallelism: threads), Path.Combine(root, "video64")).Count} files");
Time($"video {clips} clips 3 s 8 fps 112x112", () => $"{VideoDataMaker.Make(new VideoMakerOptions(clips, 1, 112, MaxParallelism: threads), Path.Combine(root, "video112")).Count} files");
MadeSet? corpus = null, dialogs = null;
Time("text 5000 documents + 5000 dialogs", () => { (corpus, dialogs) = TextDataMaker.Make(new TextMakerOptions(5000, 5000, 1), Path.Combine(root, "text")); return "ok"; });
var texts = BpeTrainer.ReadTexts(corpus!.ManifestPath).Concat(BpeTrainer.ReadTexts(dialogs!.ManifestPath)).ToList();
foreach (int v in new[] { 384, 512, 700 })
{
    string ranks = Path.Combine(root, $"bpe{v}.model");
    Time($"BPE {v} on {texts.Sum(t => t.Length) / 1e6:F2} M chars", () => { BpeTrainer.TrainToFile(texts, v, ranks); return ranks; });
    var tok = Llama3Tokenizer.FromFile(ranks);
    long chars = 0, toks = 0;
    foreach (var t in texts) { chars += t.Length; toks += tok.Encode(t).Count; }
    Console.WriteLine($"  tokens/char {(double)toks / chars:F3}  (Meta's 128K vocabulary: {(double)texts.Sum(t => Llama3Tokenizer.Default.Encode(t).Count) / chars:F3})");
}

// GGUF exporter for the side-by-side comparison with llama.cpp (bench/compare-llamacpp.sh).
// Run: dotnet run -c Release --project bench/Llama3.Multimodal.Bench.Gguf -- export --model DIR --type f32|f16|q8_0 --out FILE [--check]
//      dotnet run -c Release --project bench/Llama3.Multimodal.Bench.Gguf -- check --model DIR --type f32|f16|q8_0 --gguf FILE
//      dotnet run -c Release --project bench/Llama3.Multimodal.Bench.Gguf -- info --gguf FILE
using System.Diagnostics;
using Llama3.Multimodal.Bench.Gguf;

const string Usage = "usage: export --model DIR --type f32|f16|q8_0 --out FILE [--check]\n       check --model DIR --type f32|f16|q8_0 --gguf FILE\n       info --gguf FILE";
if (args.Length == 0 || args[0] is "-h" or "--help") { Console.WriteLine(Usage); return 0; }
string? Opt(string name)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}
string Req(string name) => Opt(name) ?? throw new ArgumentException($"{args[0]}: {name} is required.\n{Usage}");
try
{
    if (args[0] == "info")
    {
        // Weight bytes one decoded token reads: every tensor, except the embedding table when a separate output
        // matrix exists (then only one embedding row is read).
        using var g = GgufReader.Open(Req("--gguf"));
        bool untied = g.Tensors.Any(t => t.Name == "output.weight");
        long perToken = g.Tensors.Where(t => !(untied && t.Name == "token_embd.weight")).Sum(t => t.ByteSize);
        Console.WriteLine($"{{\"file_bytes\": {new FileInfo(g.Path).Length}, \"weight_bytes_per_token\": {perToken}, \"tensors\": {g.Tensors.Count}}}");
        return 0;
    }
    string model = Req("--model");
    var type = LlamaGguf.ParseType(Req("--type"));
    var sw = Stopwatch.StartNew();
    string gguf;
    if (args[0] == "export")
    {
        gguf = Req("--out");
        LlamaGguf.Export(model, gguf, type);
        Console.WriteLine($"wrote {gguf} ({new FileInfo(gguf).Length / 1e6:F1} MB, {type}) in {sw.Elapsed.TotalSeconds:F1} s");
        if (!args.Contains("--check")) return 0;
        sw.Restart();
    }
    else if (args[0] == "check") gguf = Req("--gguf");
    else { Console.Error.WriteLine($"unknown mode '{args[0]}'.\n{Usage}"); return 2; }
    var r = GgufCheck.Verify(model, gguf, type);
    Console.WriteLine($"check {gguf}: ok — {r.Keys} keys, {r.Tokens} tokens, {r.Merges} merges, {r.Tensors} tensors, {r.Elements:N0} values equal the source" +
        (type == GgmlType.Q8_0 ? $" within the Q8_0 bound (max error {r.MaxQ8Error:G3} = {r.MaxQ8ErrorOverScale:F3} of a block's scale)" : "") + $" ({sw.Elapsed.TotalSeconds:F1} s)");
    return 0;
}
catch (Exception e) when (e is ArgumentException or InvalidDataException or IOException or KeyNotFoundException or Llama3.Multimodal.Text.CheckpointFormatException or Llama3.Multimodal.Text.ConfigException or Llama3.Multimodal.Text.TokenizerFormatException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}

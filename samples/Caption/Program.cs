// Caption an image with a Llama 3.2 Vision-style model: the shipped demo model, or any compatible checkpoint
// (e.g. Llama-3.2-11B-Vision-Instruct in the Hugging Face layout) with --model DIR.
//   dotnet run --project samples/Caption -- [--model DIR] image.png ["prompt"]
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using static TorchSharp.torch;

return SampleArgs.Run(() =>
{
    var (modelDir, rest) = SampleArgs.Parse(args, "vision");
    if (rest.Count < 1) { Console.Error.WriteLine("usage: Caption [--model DIR] IMAGE [PROMPT]"); return 2; }
    using var model = VisionLanguageModel.FromPretrained(modelDir, CPU, ScalarType.Float32);
    // A base model (the demo) continues the image with a caption; an Instruct model answers the prompt.
    string prompt = rest.Count > 1 ? rest[1] : model.PromptFormat == VisionPromptFormat.Completion ? "" : "Describe the image.";
    var dec = model.Tokenizer.NewStreamingDecoder();
    var result = model.Generate(new[] { rest[0] }, prompt, new GenerationOptions { MaxNewTokens = 64 }, id => Console.Write(dec.Push(id)));
    Console.WriteLine(dec.Flush());
    Console.Error.WriteLine($"{result.Tokens.Count} tokens, prefill {result.PrefillSeconds:F2} s, decode {result.DecodeSeconds:F2} s");
    return 0;
});

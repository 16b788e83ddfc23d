// Caption an image with a Llama 3.2 Vision-style model.
//   dotnet run --project samples/Caption -- MODEL_DIR image.png ["prompt"]
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using static TorchSharp.torch;

if (args.Length < 2) { Console.Error.WriteLine("usage: Caption MODEL_DIR IMAGE [PROMPT]"); return 2; }
using var model = VisionLanguageModel.FromPretrained(args[0], CPU, ScalarType.Float32);
string prompt = args.Length > 2 ? args[2] : "Describe the image.";
var dec = model.Tokenizer.NewStreamingDecoder();
var result = model.Generate(new[] { args[1] }, prompt, new GenerationOptions { MaxNewTokens = 64 }, id => Console.Write(dec.Push(id)));
Console.WriteLine(dec.Flush());
Console.Error.WriteLine($"{result.Tokens.Count} tokens, prefill {result.PrefillSeconds:F2} s, decode {result.DecodeSeconds:F2} s");
return 0;

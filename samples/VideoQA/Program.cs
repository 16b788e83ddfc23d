// Ask about a video clip: the shipped demo model (which describes what happens), or another with --model DIR.
//   dotnet run --project samples/VideoQA -- [--model DIR] clip.mp4 ["What happens?"]
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Video;
using static TorchSharp.torch;

var (modelDir, rest) = SampleArgs.Parse(args, "video");
if (rest.Count < 1) { Console.Error.WriteLine("usage: VideoQA [--model DIR] VIDEO [QUESTION]"); return 2; }
using var model = VideoLanguageModel.FromPretrained(modelDir, CPU, ScalarType.Float32);
var dec = model.Tokenizer.NewStreamingDecoder();
model.Generate(rest[0], rest.Count > 1 ? rest[1] : "What happens?", new GenerationOptions { MaxNewTokens = 64 }, id => Console.Write(dec.Push(id)));
Console.WriteLine(dec.Flush());
return 0;

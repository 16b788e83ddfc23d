// Ask a question about a video clip.
//   dotnet run --project samples/VideoQA -- MODEL_DIR clip.mp4 "What happens?"
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Video;
using static TorchSharp.torch;

if (args.Length < 3) { Console.Error.WriteLine("usage: VideoQA MODEL_DIR VIDEO QUESTION"); return 2; }
using var model = VideoLanguageModel.FromPretrained(args[0], CPU, ScalarType.Float32);
var dec = model.Tokenizer.NewStreamingDecoder();
model.Generate(args[1], args[2], new GenerationOptions { MaxNewTokens = 64 }, id => Console.Write(dec.Push(id)));
Console.WriteLine(dec.Flush());
return 0;

// Ask about a video clip: the shipped demo model (a base model: it describes what happens), or another with --model DIR.
//   dotnet run --project samples/VideoQA -- [--model DIR] clip.mp4 ["What happens?"]
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Video;
using Llama3.Multimodal.Vision;
using static TorchSharp.torch;

return SampleArgs.Run(() =>
{
    var (modelDir, rest) = SampleArgs.Parse(args, "video");
    if (rest.Count < 1) { Console.Error.WriteLine("usage: VideoQA [--model DIR] VIDEO [QUESTION]"); return 2; }
    using var model = VideoLanguageModel.FromPretrained(modelDir, CPU, ScalarType.Float32);
    var dec = model.Tokenizer.NewStreamingDecoder();
    string question = rest.Count > 1 ? rest[1] : model.PromptFormat == VisionPromptFormat.Completion ? "" : "What happens?";
    model.Generate(rest[0], question, new GenerationOptions { MaxNewTokens = 64 }, id => Console.Write(dec.Push(id)));
    Console.WriteLine(dec.Flush());
    return 0;
});

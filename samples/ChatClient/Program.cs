// The models behind Microsoft.Extensions.AI's IChatClient: a question about an image, streamed.
//   dotnet run --project samples/ChatClient -- [--model DIR] [IMAGE] ["question"]
// Without --model: the shipped instruction-following demo model (assets/models/demo/vision-instruct), which answers
// questions about the demo's images ("Describe the image.", "What colour is the circle?", "How many shapes are there?").
using Llama3.Multimodal.Extensions.AI;
using Llama3.Multimodal.Vision;
using Microsoft.Extensions.AI;
using static TorchSharp.torch;

return await SampleArgs.RunAsync(async () =>
{
    var (modelDir, rest) = SampleArgs.Parse(args, "vision-instruct");
    using var vlm = VisionLanguageModel.FromPretrained(modelDir, CPU, ScalarType.Float32);
    using IChatClient client = new LlamaChatClient(vision: vlm);
    var contents = new List<AIContent>();
    string? image = rest.Count > 0 ? rest[0] : null;
    if (image is not null) contents.Add(new DataContent(File.ReadAllBytes(image), image.EndsWith(".jpg", StringComparison.OrdinalIgnoreCase) ? "image/jpeg" : "image/png"));
    contents.Add(new TextContent(rest.Count > 1 ? rest[1] : image is not null ? "Describe the image." : "Repeat after me: hello"));
    await foreach (var update in client.GetStreamingResponseAsync(new[] { new ChatMessage(ChatRole.User, contents) }, new ChatOptions { MaxOutputTokens = 48 }))
        Console.Write(update.Text);
    Console.WriteLine();
    return 0;
});

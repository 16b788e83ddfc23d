// The models behind Microsoft.Extensions.AI's IChatClient: text, an image and streaming.
//   dotnet run --project samples/ChatClient -- VISION_MODEL_DIR [image.png]
using Llama3.Multimodal.Extensions.AI;
using Llama3.Multimodal.Vision;
using Microsoft.Extensions.AI;
using static TorchSharp.torch;

if (args.Length < 1) { Console.Error.WriteLine("usage: ChatClient VISION_MODEL_DIR [IMAGE]"); return 2; }
using var vlm = VisionLanguageModel.FromPretrained(args[0], CPU, ScalarType.Float32);
using IChatClient client = new LlamaChatClient(vision: vlm);
var contents = new List<AIContent>();
if (args.Length > 1) contents.Add(new DataContent(File.ReadAllBytes(args[1]), args[1].EndsWith(".jpg") ? "image/jpeg" : "image/png"));
contents.Add(new TextContent(args.Length > 1 ? "Describe the image." : "Say hello."));
await foreach (var update in client.GetStreamingResponseAsync(new[] { new ChatMessage(ChatRole.User, contents) }, new ChatOptions { MaxOutputTokens = 48 }))
    Console.Write(update.Text);
Console.WriteLine();
return 0;

using System.Text.Json.Nodes;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training.Tests.Recipes;

/// <summary>
/// Tiny fixtures of the image post-training recipes, made once per test run: a pre-trained image model (tiny-vision,
/// byte vocabulary, cross-attention gates open), an instruct text model of the same decoder shape with other weights,
/// image dialogues and preference records over rendered PNG scenes.
/// </summary>
internal static class VisionPostTrainingData
{
    public const int ImageToken = 264;

    static readonly Lazy<string> Root = new(Make);

    public static string ImageModel => Path.Combine(Root.Value, "image-model");
    public static string InstructModel => Path.Combine(Root.Value, "instruct");
    public static string Dialogs => Path.Combine(Root.Value, "dialogs.jsonl");
    public static string Pairs => Path.Combine(Root.Value, "pairs.jsonl");
    public static string Prompts => Path.Combine(Root.Value, "prompts.jsonl");

    public static VisionLanguageConfig ModelConfig()
    {
        var p = VisionPresets.Get("tiny-vision");
        var t = p.Text with { VocabSize = 264, BosTokenId = 256, EosTokenIds = new[] { 257, 261 }, PadTokenId = 258, MaxPositionEmbeddings = 256 };
        return p with { Text = t, ImageTokenIndex = ImageToken };
    }

    static string Make()
    {
        string root = TestRuns.TempDir();
        using (var vlm = VisionLanguageModel.Create(ModelConfig()).InitializeWeights(11))
        {
            using (torch.no_grad())
                foreach (var (name, p) in vlm.named_parameters())
                    if (name.EndsWith("cross_attn_attn_gate", StringComparison.Ordinal) || name.EndsWith("cross_attn_mlp_gate", StringComparison.Ordinal)) p.fill_(0.5);
            vlm.PromptFormat = VisionPromptFormat.Completion;
            vlm.Save(Path.Combine(root, "image-model"));
            var text = vlm.Config.Text with { NumLayers = vlm.Config.Text.NumLayers - vlm.Config.CrossAttentionLayers.Count, ExtraEmbeddingRows = 0 };
            using var instruct = LlamaForCausalLM.Create(text).InitializeWeights(23);
            instruct.Save(Path.Combine(root, "instruct"));
        }
        // Dialogues on four rendered scenes: "Describe the image." → the caption, HF content parts and plain strings mixed.
        var scenes = File.ReadLines(MediaTestData.ImageManifest).Take(4).Select(l => (JsonObject)JsonNode.Parse(l)!)
            .Select(o => (Image: Path.GetFullPath(Path.Combine(Path.GetDirectoryName(MediaTestData.ImageManifest)!, (string)o["image"]!)), Caption: (string)o["caption"]!)).ToList();
        var dialogs = scenes.Select((s, i) => new JsonObject
        {
            ["images"] = new JsonArray(s.Image),
            ["messages"] = i % 2 == 0
                ? new JsonArray(new JsonObject { ["role"] = "user", ["content"] = new JsonArray(new JsonObject { ["type"] = "image" }, new JsonObject { ["type"] = "text", ["text"] = "Describe the image." }) },
                    new JsonObject { ["role"] = "assistant", ["content"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = s.Caption }) })
                : new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "<|image|>Describe the image." }, new JsonObject { ["role"] = "assistant", ["content"] = s.Caption }),
        }.ToJsonString());
        File.WriteAllLines(Path.Combine(root, "dialogs.jsonl"), dialogs);
        // Preference records: the caption is chosen, a wrong one rejected; the first two also have an edited response.
        var pairs = scenes.Select((s, i) =>
        {
            var o = new JsonObject { ["images"] = new JsonArray(s.Image), ["prompt"] = "Describe the image.", ["chosen"] = s.Caption, ["rejected"] = "zzzz zzzz zzzz" };
            if (i < 2) o["edited"] = s.Caption + " indeed";
            return o.ToJsonString();
        });
        File.WriteAllLines(Path.Combine(root, "pairs.jsonl"), pairs);
        File.WriteAllLines(Path.Combine(root, "prompts.jsonl"), scenes.Take(2).Select(s => new JsonObject { ["images"] = new JsonArray(s.Image), ["prompt"] = "Describe the image." }.ToJsonString()));
        return root;
    }

    /// <summary>The recipe's defaults on the fixtures: tiny steps, bytes, no shuffling, then <paramref name="sets"/>.</summary>
    public static TrainConfig Config(string recipe, long steps, params string[] sets)
    {
        using var r = RecipeRegistry.Create(recipe);
        var all = new List<string>
        {
            "tokenizer=\"bytes\"", $"model.init_from=\"{ImageModel}\"", $"vision.language_model_from=\"{InstructModel}\"", "vision.preset=\"tiny-vision\"", "vision.max_tiles=1",
            $"data.train=\"{(recipe == "vision-sft" ? Dialogs : Pairs)}\"", "data.seq_len=96", "data.shuffle=false", "data.prefetch=4",
            $"optim.total_steps={steps}", "optim.warmup_steps=0", "optim.schedule=\"constant\"", "optim.lr=0.005", "optim.weight_decay=0",
            "batch.global=2", "batch.micro=2", "train.save_every=0", "train.log_every=1000",
        };
        all.AddRange(sets);
        return ConfigLoader.Load(r.DefaultConfig(), null, all);
    }
}

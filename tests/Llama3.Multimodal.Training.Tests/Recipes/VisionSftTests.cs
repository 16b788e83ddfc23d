using System.Text.Json.Nodes;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training.Tests.Recipes;

/// <summary>
/// <c>vision-sft</c>: the Llama 3.2 Vision Instruct chat format with its assistant-only labels, the language-model hot
/// swap (frozen, text-only logits equal to the instruct model's), training on image dialogues, the model soup of two runs,
/// and clear errors on bad records and keys.
/// </summary>
public class VisionSftTests
{
    static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    static long[] B(string s) => System.Text.Encoding.UTF8.GetBytes(s).Select(b => (long)b).ToArray();

    [Fact]
    public void ChatFormatAndLabelsMatchAHandWrittenSequence()
    {
        var messages = new[]
        {
            new ChatMessage("user", "<|image|>Describe the image."),
            new ChatMessage("assistant", "A cat."),
            new ChatMessage("user", "Colour?"),
            new ChatMessage("assistant", "Red."),
        };
        var (ids, labels) = VisionChatTokens.Encode(ByteTokenizer.Instance, messages, 264, 1000);
        // <|begin_of_text|> <|start_header_id|>user<|end_header_id|>\n\n <|image|>Describe the image.<|eot_id|> ...
        var expected = new List<long> { 256, 259 };
        expected.AddRange(B("user")); expected.Add(260); expected.AddRange(B("\n\n"));
        expected.Add(264); expected.AddRange(B("Describe the image.")); expected.Add(261);
        expected.Add(259); expected.AddRange(B("assistant")); expected.Add(260); expected.AddRange(B("\n\n"));
        int a1 = expected.Count; expected.AddRange(B("A cat.")); expected.Add(261); int a1End = expected.Count;
        expected.Add(259); expected.AddRange(B("user")); expected.Add(260); expected.AddRange(B("\n\n")); expected.AddRange(B("Colour?")); expected.Add(261);
        expected.Add(259); expected.AddRange(B("assistant")); expected.Add(260); expected.AddRange(B("\n\n"));
        int a2 = expected.Count; expected.AddRange(B("Red.")); expected.Add(261);
        Assert.Equal(expected, ids);
        // labels[t] = ids[t+1] exactly where token t+1 is assistant content or its <|eot_id|>; headers and user turns never.
        for (int t = 0; t < ids.Length; t++)
        {
            bool target = t + 1 < ids.Length && (t + 1 >= a1 && t + 1 < a1End || t + 1 >= a2);
            Assert.Equal(target ? ids[t + 1] : -100, labels[t]);
        }
        Assert.Equal(261, labels[a1End - 2]);                                  // the assistant's <|eot_id|> is trained
        Assert.Equal(-100, labels[a1End - 1]);                                 // the next header is not
    }

    [Fact]
    public void TrainingEncodesImageChatsExactlyAsInferenceDoes()
    {
        string tokPath = Path.Combine(TestRuns.RepoRoot(), "assets", "models", "demo", "vision", "tokenizer.model");
        var tok = (Llama3TrainingTokenizer)Llama3TrainingTokenizer.Resolve(tokPath);
        const int image = 128256;
        var dialog = new[] { new ChatMessage("user", "<|image|>Describe the image."), new ChatMessage("assistant", "the number 1"), new ChatMessage("user", "What colour is it? ") };
        var prompt = VisionChatTokens.Prompt(tok, dialog, image);
        Assert.Equal(VisionPrompt.EncodeDialog(tok.Inner, dialog, true, image), prompt);
        // The one-turn prompt of mm vision-generate / VisionLanguageModel.Generate (image first when no placeholder is given).
        Assert.Equal(VisionPrompt.EncodeInstruct(tok.Inner, "Describe the image.", 1, image), VisionChatTokens.Prompt(tok, dialog.Take(1).ToList(), image));
        Assert.Equal(1, prompt.Count(i => i == image));
        Assert.Equal(tok.Inner.BosId, prompt[0]);
        Assert.Equal(image, prompt[VisionChatTokens.Header(tok, "user").Count + 1]);   // right after the user header, no newline added
    }

    [Fact]
    public void RecordsAcceptStringsAndContentPartsAndRefuseBadOnesWithTheirLine()
    {
        string dir = TestRuns.TempDir();
        string img = File.ReadLines(VisionPostTrainingData.Dialogs).Select(l => (string)JsonNode.Parse(l)!["images"]![0]!).First();
        string path = Path.Combine(dir, "d.jsonl");
        File.WriteAllText(path,
            $"{{\"images\": [\"{img}\"], \"messages\": [{{\"role\": \"user\", \"content\": [{{\"type\": \"text\", \"text\": \"Look: \"}}, {{\"type\": \"image\"}}, {{\"type\": \"text\", \"text\": \"what?\"}}]}}, {{\"role\": \"assistant\", \"content\": \"ok\"}}]}}\n");
        var r = JsonlManifest.ReadVisionDialogs(path, false, out _).Single();
        Assert.Equal("Look: <|image|>what?", r.Messages[0].Content);
        Assert.Equal(new[] { img }, r.Images);

        string Error(string line)
        {
            File.WriteAllText(path, "\n" + line + "\n");
            var e = Assert.Throws<DataFormatException>(() => JsonlManifest.ReadVisionDialogs(path, false, out _));
            Assert.Contains("d.jsonl:2", e.Message);
            return e.Message;
        }
        string user2 = "{\"role\": \"user\", \"content\": [{\"type\": \"image\"}, {\"type\": \"image\"}, {\"type\": \"text\", \"text\": \"Compare.\"}]}";
        Assert.Contains("2 image part(s) but \"images\" lists 1 file(s)", Error($"{{\"images\": [\"{img}\"], \"messages\": [{user2}, {{\"role\": \"assistant\", \"content\": \"same\"}}]}}"));
        Assert.Contains("images[0]: file 'nope.png' not found", Error("{\"images\": [\"nope.png\"], \"messages\": [{\"role\": \"user\", \"content\": \"<|image|>x\"}, {\"role\": \"assistant\", \"content\": \"y\"}]}"));
        Assert.Contains("messages[0]: content[0]: type \"video\"", Error($"{{\"images\": [\"{img}\"], \"messages\": [{{\"role\": \"user\", \"content\": [{{\"type\": \"video\"}}]}}, {{\"role\": \"assistant\", \"content\": \"y\"}}]}}"));
        Assert.Contains("an assistant message cannot hold an image", Error($"{{\"images\": [\"{img}\"], \"messages\": [{{\"role\": \"user\", \"content\": \"x\"}}, {{\"role\": \"assistant\", \"content\": [{{\"type\": \"image\"}}]}}]}}"));
        Assert.Contains("no assistant message", Error($"{{\"images\": [\"{img}\"], \"messages\": [{{\"role\": \"user\", \"content\": \"<|image|>x\"}}]}}"));
        Assert.Contains("missing field \"images\"", Error("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\", \"content\": \"y\"}]}"));
    }

    [Fact]
    public void ALanguageModelThatDoesNotFitIsAClearError()
    {
        string dir = TestRuns.TempDir();
        var cfg = VisionPostTrainingData.ModelConfig().Text;
        using (var wide = LlamaForCausalLM.Create(cfg with { NumLayers = 4, ExtraEmbeddingRows = 0, IntermediateSize = 96 }).InitializeWeights(1)) wide.Save(Path.Combine(dir, "ffn"));
        using (var deep = LlamaForCausalLM.Create(cfg with { NumLayers = 5, ExtraEmbeddingRows = 0 }).InitializeWeights(1)) deep.Save(Path.Combine(dir, "deep"));
        string Err(string folder)
        {
            using var t = RecipeRegistry.Create("vision-sft");
            var e = Assert.Throws<ConfigException>(() => t.Setup(VisionPostTrainingData.Config("vision-sft", 1, $"vision.language_model_from=\"{folder}\""), CPU, ScalarType.Float32));
            Assert.Contains($"vision.language_model_from = '{folder}'", e.Message);
            return e.Message;
        }
        Assert.Contains("intermediate_size 96 (image model: 192)", Err(Path.Combine(dir, "ffn")));
        Assert.Contains("num_hidden_layers 5 (image model: 4 self-attention layers)", Err(Path.Combine(dir, "deep")));
        Assert.Contains("an image-text model", Err(VisionPostTrainingData.ImageModel));
        // A tensor whose shape differs under a matching config is named.
        string bad = Path.Combine(dir, "bad");
        using (var m = LlamaForCausalLM.Create(cfg with { NumLayers = 4, ExtraEmbeddingRows = 0 }).InitializeWeights(1)) m.Save(bad);
        var tensors = new Dictionary<string, Tensor>();
        using (var r = CheckpointReader.Open(bad)) foreach (var k in r.Keys) tensors[k] = k == "model.norm.weight" ? torch.ones(32) : r.Read(k);
        SafeTensorsWriter.Save(Path.Combine(bad, "model.safetensors"), tensors);
        foreach (var t in tensors.Values) t.Dispose();
        Assert.Contains("tensor 'model.norm.weight' has shape [32], the image model's 'language_model.model.norm.weight' needs [64]", Err(bad));
    }

    /// <summary>Two vision-sft runs with different learning rates (saved at the end), shared by the tests below.</summary>
    static readonly Lazy<(string A, string B, TrainResult RunA)> Runs = new(() =>
    {
        string a = TestRuns.TempDir(), b = TestRuns.TempDir();
        TrainResult ra;
        using (var t = new Trainer(RecipeRegistry.Create("vision-sft"), VisionPostTrainingData.Config("vision-sft", 24), a, TestRuns.Quiet)) ra = t.Run();
        using (var t = new Trainer(RecipeRegistry.Create("vision-sft"), VisionPostTrainingData.Config("vision-sft", 3, "optim.lr=0.003"), b, TestRuns.Quiet)) t.Run();
        return (Path.Combine(a, "checkpoints", CheckpointStore.NameOf(24)), Path.Combine(b, "checkpoints", CheckpointStore.NameOf(3)), ra);
    });

    [Fact]
    public void TrainsTheAdaptersWithTheSwappedLanguageModelFrozenAndTextOnlyLogitsEqualTheInstructModel()
    {
        var (a, _, run) = Runs.Value;
        double first = run.History[0].Loss, last = run.History[^1].Loss;
        Assert.True(double.IsFinite(first) && last < 0.88 * first, $"loss {string.Join(" ", run.History.Select(h => h.Loss.ToString("F3")))}");

        using var trained = VisionLanguageModel.FromPretrained(a);
        using var start = VisionLanguageModel.FromPretrained(VisionPostTrainingData.ImageModel);
        using var instruct = LlamaForCausalLM.FromPretrained(VisionPostTrainingData.InstructModel);
        Assert.Equal(VisionPromptFormat.Instruct, trained.PromptFormat);
        Assert.Equal("vision-sft", MediaTokens.ReadInfo(a).Recipe);
        // The language model is the instruct model's, bit for bit, after the steps; the <|image|> row is the image model's.
        var inst = instruct.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var st = start.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        int copied = 0;
        foreach (var (name, p) in trained.language_model.named_parameters())
        {
            if (trained.TextKeyOf(name) is not { } key) continue;
            var src = inst[key];
            var mine = key == "model.embed_tokens.weight" ? p.narrow(0, 0, src.shape[0]) : p;
            Assert.True(Same(mine, src), $"{name} differs from the instruct model's {key}");
            copied++;
        }
        Assert.Equal(inst.Count, copied);
        Assert.True(Same(trained.language_model.model.embed_tokens.weight.narrow(0, 264, 8), st["language_model.model.embed_tokens.weight"].narrow(0, 264, 8)));
        // The adapters trained.
        foreach (var prefix in new[] { "vision_model.", "multi_modal_projector.", trained.Components["cross_attention_layers"][0] + "." })
            Assert.Contains(trained.named_parameters(), p => p.name.StartsWith(prefix, StringComparison.Ordinal) && !Same(p.parameter, st[p.name]));
        // Text only: exactly the instruct model's logits.
        var ids = VisionChatTokens.Prompt(ByteTokenizer.Instance, new[] { new ChatMessage("user", "Repeat after me: a red circle") }, VisionPostTrainingData.ImageToken);
        using var x = torch.tensor(ids.Select(i => (long)i).ToArray(), new long[] { 1, ids.Count });
        using var mineLogits = trained.Forward(x, null);
        using var theirs = instruct.Forward(x);
        Assert.True(Same(mineLogits, theirs), "text-only logits differ from the instruct model's");
    }

    [Fact]
    public void TheLanguageModelTrainsTooWhenTrainableNamesIt()
    {
        string dir = TestRuns.TempDir();
        var cfg = VisionPostTrainingData.Config("vision-sft", 1, "train.trainable=[\"vision_model\",\"multi_modal_projector\",\"cross_attention_layers\",\"language_model\"]");
        using var t = new Trainer(RecipeRegistry.Create("vision-sft"), cfg, dir, TestRuns.Quiet);
        Assert.Contains("language_model.model.layers.0.self_attn.q_proj.weight", t.TrainableNames);
        t.Run();
        using var instruct = LlamaForCausalLM.FromPretrained(VisionPostTrainingData.InstructModel);
        var vlm = ((VisionSftRecipe)t.Recipe).Vlm;
        static Tensor Q(nn.Module m) => m.named_parameters().First(p => p.name == "model.layers.0.self_attn.q_proj.weight").parameter;
        Assert.False(Same(Q(vlm.language_model), Q(instruct)), "the language model did not train");
    }

    [Fact]
    public void AModelSoupOfTwoRunsIsTheirMeanAndLoadsAsAnInstructModel()
    {
        var (a, b, _) = Runs.Value;
        string soup = Path.Combine(TestRuns.TempDir(), "soup");
        CheckpointAverager.Average(new[] { a, b }, soup);
        using var s = VisionLanguageModel.FromPretrained(soup);
        using var ma = VisionLanguageModel.FromPretrained(a);
        using var mb = VisionLanguageModel.FromPretrained(b);
        Assert.Equal(VisionPromptFormat.Instruct, s.PromptFormat);
        Assert.Equal("vision-sft", MediaTokens.ReadInfo(soup).Recipe);
        var pa = ma.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var pb = mb.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        int differing = 0;
        foreach (var (name, p) in s.named_parameters())
        {
            using var mean = pa[name].to_type(ScalarType.Float64).add(pb[name].to_type(ScalarType.Float64)).div(2).to_type(ScalarType.Float32);
            Assert.True(Same(p, mean), $"{name} is not the mean of the runs");
            if (!Same(pa[name], pb[name])) differing++;
            else Assert.True(Same(p, pa[name]));                     // shared (frozen) weights: bit-identical
        }
        Assert.True(differing > 0);
        Assert.True(Same(ma.language_model.model.norm.weight, s.language_model.model.norm.weight), "the frozen LM must be shared");
    }
}

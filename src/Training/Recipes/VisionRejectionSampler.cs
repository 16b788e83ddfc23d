using System.Text.Json.Nodes;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// Rejection sampling over images (Llama 3 §4.2.2 and §7.5): for each prompt with its images, draw K responses from a
/// vision policy, score each (images + prompt + response) with a vision reward model, and keep the best as a
/// <c>vision-sft</c> dialogue (<c>{"images": [...], "messages": [...], "reward": r}</c>). Prompts and responses use the
/// Llama 3.2 Vision Instruct chat format (<see cref="VisionChatTokens"/>).
/// </summary>
public sealed class VisionRejectionSampler
{
    readonly VisionLanguageModel _policy;
    readonly VisionRewardModel _reward;
    readonly ITrainingTokenizer _tok;
    readonly ImagePreprocessor _pre;

    /// <summary>Samples from <paramref name="policy"/> and scores with <paramref name="reward"/>; images are fitted to at most <paramref name="maxTiles"/> tiles.</summary>
    public VisionRejectionSampler(VisionLanguageModel policy, VisionRewardModel reward, ITrainingTokenizer tokenizer, int maxTiles = 4)
    {
        if (policy.Config.ImageTokenIndex != reward.Vlm.Config.ImageTokenIndex || policy.Config.Text.VocabSize != reward.Vlm.Config.Text.VocabSize)
            throw new ArgumentException("the policy and the reward model have different vocabularies.");
        _policy = policy; _reward = reward; _tok = tokenizer;
        _pre = VisionRecipe.Preprocessor(policy.Config.Vision, maxTiles);
    }

    /// <summary>K candidates for one prompt (temperature sampling, seeded), each scored; the best is <c>MaxBy(Reward)</c>.</summary>
    public IReadOnlyList<RejectionSampler.Candidate> Sample(IReadOnlyList<ChatMessage> prompt, IReadOnlyList<RgbImage> images, int k, double temperature, int maxNewTokens, long seed)
    {
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), "K must be ≥ 1.");
        int image = _policy.Config.ImageTokenIndex;
        var ids = VisionChatTokens.Prompt(_tok, prompt, image);
        int given = ids.Count(i => i == image);
        if (given != images.Count) throw new ArgumentException($"the prompt holds {given} <|image|> but {images.Count} images were given.");
        var processed = images.Select(i => VisionRecipe.ProcessImage(_pre, _policy.Preprocessor, i)).ToList();
        try
        {
            using var policyBatch = _policy.Preprocessor.Pack(new[] { (IReadOnlyList<ProcessedImage>)processed });
            using var rewardBatch = _reward.Vlm.Preprocessor.Pack(new[] { (IReadOnlyList<ProcessedImage>)processed });
            var list = new List<RejectionSampler.Candidate>();
            using var noGrad = torch.no_grad();
            for (int s = 0; s < k; s++)
            {
                var options = new GenerationOptions
                {
                    MaxNewTokens = maxNewTokens, Temperature = temperature, Seed = seed * 1000 + s, StopTokens = new[] { _tok.EotId, _tok.EosId },
                }.Validate();
                var result = _policy.GenerateBatch(new[] { (IReadOnlyList<int>)ids }, policyBatch, options)[0];
                string text = _tok.Decode(result.Tokens.Where(t => t != _tok.EotId && t != _tok.EosId));
                var full = ids.Concat(VisionChatTokens.Response(_tok, text)).Select(i => (long)i).ToArray();
                using var x = torch.tensor(full, new long[] { 1, full.Length });
                using var last = torch.tensor(new long[] { full.Length - 1 });
                using var r = _reward.Rewards(x, rewardBatch, last);
                list.Add(new RejectionSampler.Candidate(text, r.item<float>()));
            }
            return list;
        }
        finally { foreach (var p in processed) p.Dispose(); }
    }

    /// <summary>
    /// Reads prompts from <paramref name="promptsManifest"/> (records with <c>"images"</c> and a <c>"prompt"</c> string or
    /// message list, as in image preference data; other fields are ignored), keeps the best of <paramref name="k"/> per
    /// prompt, and writes the dialogues to <paramref name="outPath"/> with image paths relative to its folder (image parts
    /// as Hugging Face content parts). Returns the number of dialogues written.
    /// </summary>
    public int Run(string promptsManifest, string outPath, int k, double temperature, int maxNewTokens, long seed, bool skipBad = false)
    {
        var prompts = JsonlManifest.Read(promptsManifest, (o, dir) =>
        {
            if (!o.ContainsKey("prompt")) throw new FormatException("missing field \"prompt\".");
            var images = ManifestRecords.Images(o, dir);
            return (Images: images, Prompt: ManifestRecords.PromptOf(o, images.Count));
        }, skipBad, out _);
        string outDir = Path.GetDirectoryName(Path.GetFullPath(outPath))!;
        var lines = new List<string>();
        for (int i = 0; i < prompts.Count; i++)
        {
            var (paths, prompt) = prompts[i];
            var images = paths.Select(p => ImageLoader.Load(p)).ToList();
            var best = Sample(prompt, images, k, temperature, maxNewTokens, seed + i).MaxBy(c => c.Reward)!;
            var msgs = new JsonArray();
            foreach (var m in prompt) msgs.Add(new JsonObject { ["role"] = m.Role, ["content"] = Content(m.Content) });
            msgs.Add(new JsonObject { ["role"] = "assistant", ["content"] = best.Text });
            var files = new JsonArray(paths.Select(p => (JsonNode)JsonValue.Create(Path.GetRelativePath(outDir, p).Replace('\\', '/'))!).ToArray());
            lines.Add(new JsonObject { ["images"] = files, ["messages"] = msgs, ["reward"] = best.Reward }.ToJsonString());
        }
        AtomicFile.WriteAllText(outPath, string.Concat(lines.Select(l => l + "\n")));
        return lines.Count;
    }

    // A content string with <|image|> placeholders as HF content parts (a plain string when it has none).
    static JsonNode Content(string content)
    {
        if (!content.Contains(VisionPrompt.ImagePlaceholder, StringComparison.Ordinal)) return JsonValue.Create(content)!;
        var parts = new JsonArray();
        var pieces = content.Split(VisionPrompt.ImagePlaceholder);
        for (int i = 0; i < pieces.Length; i++)
        {
            if (i > 0) parts.Add(new JsonObject { ["type"] = "image" });
            if (pieces[i].Length > 0) parts.Add(new JsonObject { ["type"] = "text", ["text"] = pieces[i] });
        }
        return parts;
    }
}

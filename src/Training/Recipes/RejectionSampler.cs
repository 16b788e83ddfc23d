using System.Text.Json.Nodes;
using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// Rejection sampling (Llama 3 §4.2.2): for each prompt, draw K responses from the policy, score each (prompt +
/// response) with the reward model, and keep the best as an SFT dialog. Output: a dialog manifest
/// (<c>{"messages": [..., {"role": "assistant", ...}], "reward": r}</c>) ready for the <c>sft</c> recipe.
/// </summary>
public sealed class RejectionSampler
{
    readonly LlamaForCausalLM _policy;
    readonly RewardModel _reward;
    readonly ITrainingTokenizer _tok;

    /// <summary>Samples from <paramref name="policy"/> and scores with <paramref name="reward"/>.</summary>
    public RejectionSampler(LlamaForCausalLM policy, RewardModel reward, ITrainingTokenizer tokenizer)
    {
        _policy = policy; _reward = reward; _tok = tokenizer;
    }

    /// <summary>One candidate response and its reward.</summary>
    /// <param name="Text">Decoded response.</param>
    /// <param name="Reward">Reward model score of prompt + response.</param>
    public sealed record Candidate(string Text, double Reward);

    /// <summary>K candidates for one prompt (temperature sampling, seeded), each scored; the best is <c>MaxBy(Reward)</c>.</summary>
    public IReadOnlyList<Candidate> Sample(IReadOnlyList<ChatMessage> prompt, int k, double temperature, int maxNewTokens, long seed)
    {
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), "K must be ≥ 1.");
        var ids = ChatTokens.Prompt(_tok, prompt);
        var gen = new Generator((ulong)seed, _policy.Device);
        var list = new List<Candidate>();
        using var noGrad = torch.no_grad();
        for (int s = 0; s < k; s++)
        {
            var resp = Generate(ids, temperature, maxNewTokens, gen);
            string text = _tok.Decode(resp);
            var full = ids.Concat(ChatTokens.Response(_tok, text)).Select(i => (long)i).ToArray();
            using var x = torch.tensor(full, new long[] { 1, full.Length });
            using var last = torch.tensor(new long[] { full.Length - 1 });
            using var r = _reward.Rewards(x, last);
            list.Add(new Candidate(text, r.item<float>()));
        }
        return list;
    }

    List<int> Generate(List<int> prompt, double temperature, int maxNew, Generator gen)
    {
        using var scope = NewDisposeScope();
        var cache = _policy.NewCache(1, prompt.Count + maxNew + 1);
        var outIds = new List<int>();
        var x = torch.tensor(prompt.Select(i => (long)i).ToArray(), new long[] { 1, prompt.Count });
        for (int t = 0; t < maxNew; t++)
        {
            var logits = _policy.Forward(x, new ForwardOptions { Cache = cache, LastOnly = true })[0, 0];   // [V]
            long next = temperature <= 0 ? logits.argmax().item<long>()
                : Sample(logits, temperature, gen);
            if (next == _tok.EotId || next == _tok.EosId) break;
            outIds.Add((int)next);
            x = torch.tensor(new[] { next }, new long[] { 1, 1 });
        }
        return outIds;
    }

    /// <summary>
    /// Reads prompts from <paramref name="promptsManifest"/> (records with a <c>"prompt"</c> string or message list, as
    /// in preference data; other fields are ignored), keeps the best of <paramref name="k"/> per prompt, and writes the
    /// dialogs to <paramref name="outPath"/>. Returns the number of dialogs written.
    /// </summary>
    public int Run(string promptsManifest, string outPath, int k, double temperature, int maxNewTokens, long seed, bool skipBad = false)
    {
        var prompts = JsonlManifest.Read(promptsManifest, (o, _) =>
        {
            if (!o.ContainsKey("prompt")) throw new FormatException("missing field \"prompt\".");
            return ManifestRecords.Preference(new JsonObject { ["prompt"] = o["prompt"]!.DeepClone(), ["chosen"] = "a", ["rejected"] = "b" }, "").Prompt;
        }, skipBad, out _);
        var lines = new List<string>();
        for (int i = 0; i < prompts.Count; i++)
        {
            var best = Sample(prompts[i], k, temperature, maxNewTokens, seed + i).MaxBy(c => c.Reward)!;
            var msgs = new JsonArray();
            foreach (var m in prompts[i]) msgs.Add(new JsonObject { ["role"] = m.Role, ["content"] = m.Content });
            msgs.Add(new JsonObject { ["role"] = "assistant", ["content"] = best.Text });
            lines.Add(new JsonObject { ["messages"] = msgs, ["reward"] = best.Reward }.ToJsonString());
        }
        AtomicFile.WriteAllText(outPath, string.Concat(lines.Select(l => l + "\n")));
        return lines.Count;
    }

    static long Sample(Tensor logits, double temperature, Generator gen)
    {
        using var t = temperature.ToScalar();
        using var probs = logits.div(t).softmax(-1);
        using var pick = torch.multinomial(probs, 1, generator: gen);
        return pick.item<long>();
    }
}

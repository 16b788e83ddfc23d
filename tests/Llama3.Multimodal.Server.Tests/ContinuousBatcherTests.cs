using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Server.Tests;

public class ContinuousBatcherTests
{
    /// <summary>
    /// A tiny random decoder. A model runs on one thread at a time (its rotary tables grow in place), so each server or
    /// batcher that runs concurrently with other tests gets its own instance (same seed, same weights).
    /// </summary>
    internal static LlamaForCausalLM NewTiny() => LlamaForCausalLM.Create(TextPresets.Get("tiny")).InitializeWeights(4, 0.2);

    static readonly Lazy<LlamaForCausalLM> Tiny = new(NewTiny);

    static List<IReadOnlyList<int>> Prompts(int count, int seed)
    {
        var rng = new Random(seed);
        var tok = Llama3Tokenizer.Default;
        return Enumerable.Range(0, count)
            .Select(i => (IReadOnlyList<int>)new[] { tok.BosId }.Concat(Enumerable.Range(0, 3 + rng.Next(20)).Select(_ => rng.Next(1000))).ToList())
            .ToList();
    }

    [Fact]
    public async Task ConcurrentGreedyRequestsShareStepsAndEqualSerialDecoding()
    {
        var model = Tiny.Value;
        var gen = new TextGenerator(model, Llama3Tokenizer.Default);
        var prompts = Prompts(6, 1);
        var options = prompts.Select((p, i) => new GenerationOptions { MaxNewTokens = 6 + 3 * i, StopTokens = Array.Empty<int>() }).ToList();
        var expected = prompts.Select((p, i) => gen.Generate(p, options[i])).ToList();
        // A small cache forces the rows to be moved left while they decode.
        using var batcher = new ContinuousBatcher(model, Llama3Tokenizer.Default, maxBatch: 4, capacity: 48);
        var streamed = prompts.Select(_ => new List<int>()).ToArray();
        var tasks = prompts.Select((p, i) => batcher.GenerateAsync(p, options[i], id => streamed[i].Add(id))).ToList();
        var results = await Task.WhenAll(tasks);
        for (int i = 0; i < prompts.Count; i++)
        {
            Assert.Equal(expected[i].Tokens, results[i].Tokens);
            Assert.Equal(expected[i].Tokens, streamed[i]);
            Assert.Equal("length", results[i].FinishReason);
            Assert.Equal(prompts[i].Count, results[i].PromptTokens);
        }
        int total = results.Sum(r => r.Tokens.Count);
        // Every request's first token comes from its prefill; the rest from shared decode steps.
        Assert.Equal(total - prompts.Count, batcher.RowSteps);
        Assert.True(batcher.Steps < batcher.RowSteps, $"{batcher.Steps} steps for {batcher.RowSteps} rows: nothing was shared");
        Assert.Equal(0, batcher.Pending);
    }

    [Fact]
    public async Task SeededSamplingEqualsTheGeneratorAndStopTokensEndARow()
    {
        var model = Tiny.Value;
        var gen = new TextGenerator(model, Llama3Tokenizer.Default);
        var prompts = Prompts(3, 2);
        var sampled = new GenerationOptions { MaxNewTokens = 8, Temperature = 0.8, TopP = 0.9, TopK = 50, Seed = 7, StopTokens = Array.Empty<int>() };
        var expected = prompts.Select(p => gen.Generate(p, sampled)).ToList();
        using var batcher = new ContinuousBatcher(model, Llama3Tokenizer.Default, maxBatch: 3);
        var results = await Task.WhenAll(prompts.Select(p => batcher.GenerateAsync(p, sampled)));
        for (int i = 0; i < prompts.Count; i++) Assert.Equal(expected[i].Tokens, results[i].Tokens);

        // The third greedy token as a stop token: the row ends before it, with "stop".
        var greedy = gen.Generate(prompts[0], new GenerationOptions { MaxNewTokens = 5, StopTokens = Array.Empty<int>() });
        int stop = greedy.Tokens[2];
        int cut = greedy.Tokens.ToList().IndexOf(stop);
        var r = await batcher.GenerateAsync(prompts[0], new GenerationOptions { MaxNewTokens = 5, StopTokens = new[] { stop } });
        Assert.Equal(greedy.Tokens.Take(cut), r.Tokens);
        Assert.Equal("stop", r.FinishReason);
    }

    [Fact]
    public async Task ACancelledRequestLeavesWithinAStepAndTheOthersGoOn()
    {
        var model = Tiny.Value;
        var gen = new TextGenerator(model, Llama3Tokenizer.Default);
        var prompts = Prompts(2, 3);
        var longRun = new GenerationOptions { MaxNewTokens = 60, StopTokens = Array.Empty<int>() };
        using var batcher = new ContinuousBatcher(model, Llama3Tokenizer.Default, maxBatch: 2);
        using var cts = new CancellationTokenSource();
        int seen = 0, atCancel = -1;
        var cancelled = batcher.GenerateAsync(prompts[0], longRun, _ =>
        {
            if (++seen == 3) { cts.Cancel(); atCancel = seen; }
        }, cts.Token);
        var other = batcher.GenerateAsync(prompts[1], longRun);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        // No token reaches a request after the step in which it was cancelled.
        Assert.Equal(atCancel, seen);
        var otherTokens = (await other).Tokens;
        Assert.Equal(gen.Generate(prompts[1], longRun).Tokens, otherTokens);
        // Bad requests fail at once with the value named.
        var e = Assert.Throws<ArgumentException>(() => { _ = batcher.GenerateAsync(prompts[0], new GenerationOptions { MaxNewTokens = 10_000 }); });
        Assert.Contains("10000", e.Message);
        Assert.Throws<ArgumentException>(() => { _ = batcher.GenerateAsync(Array.Empty<int>()); });
        // Exclusive work runs on the loop between steps, in order.
        Assert.Equal(42, await batcher.RunExclusiveAsync(() => 42));
    }
}

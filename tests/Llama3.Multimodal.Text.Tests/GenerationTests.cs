using Llama3.Multimodal.Tests.Shared;
using Llama3.Multimodal.Text;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text.Tests;

public class GenerationTests
{
    static (LlamaForCausalLM, TextGenerator) Make()
    {
        var m = LlamaForCausalLM.Create(TextPresets.Get("tiny")).InitializeWeights(3, 0.2);
        return (m, new TextGenerator(m, Llama3Tokenizer.Default));
    }

    static List<int> Prompt(string s) => Llama3Tokenizer.Default.Encode(s, bos: true);

    [Fact]
    public void GreedyIsDeterministicAndMatchesArgmaxOfFullForward()
    {
        var (m, g) = Make();
        using var _m = m;
        var p = Prompt("The cat sat on");
        var opts = new GenerationOptions { MaxNewTokens = 6, StopTokens = Array.Empty<int>() };
        var a = g.Generate(p, opts);
        var b = g.Generate(p, opts);
        Assert.Equal(a.Tokens, b.Tokens);
        Assert.Equal(6, a.Tokens.Count);
        Assert.Equal("length", a.FinishReason);
        // Re-check every step with a plain forward (no cache).
        using var _ = no_grad();
        var seq = p.Select(i => (long)i).ToList();
        foreach (int tok in a.Tokens)
        {
            var logits = m.Forward(tensor(seq.ToArray(), new long[] { 1, seq.Count }), new ForwardOptions { LastOnly = true });
            Assert.Equal(tok, (int)logits[0, 0].argmax().item<long>());
            seq.Add(tok);
        }
    }

    [Theory]
    [InlineData(3, 1.0)]
    [InlineData(4, 0.0)]
    public void BeamSearchMatchesACacheFreeReference(int beams, double lengthPenalty)
    {
        // A 48-token vocabulary with six stop tokens, so that candidates finish at different lengths.
        using var m = TestModels.Model(TestModels.Small(vocab: 48), seed: 7);
        var g = new TextGenerator(m, Llama3Tokenizer.Default);
        var stops = new HashSet<int> { 3, 11, 19, 27, 35, 43 };
        var prompts = new[] { new List<int> { 1, 5, 9 }, new List<int> { 2, 4, 6, 8, 10, 12, 14 }, new List<int> { 7 } };
        var o = new GenerationOptions { MaxNewTokens = 7, NumBeams = beams, LengthPenalty = lengthPenalty, StopTokens = stops.ToList() };
        var batch = g.GenerateBatch(prompts, o);
        using var _ = no_grad();
        for (int i = 0; i < prompts.Length; i++)
        {
            var p = prompts[i];
            var expected = ReferenceBeamSearch.Run(seq =>
            {
                var all = p.Concat(seq).Select(x => (long)x).ToArray();
                using var logits = m.Forward(tensor(all, new long[] { 1, all.Length }), new ForwardOptions { LastOnly = true });
                return logits[0, 0].log_softmax(-1).data<float>().ToArray();
            }, beams, o.MaxNewTokens, stops, lengthPenalty);
            Assert.Equal(expected, batch[i].Tokens);
            // Batched prompts give what each gives alone (left padding does not leak into the beams).
            Assert.Equal(batch[i].Tokens, g.Generate(p, o).Tokens);
            Assert.Equal(batch[i].FinishReason == "stop" ? batch[i].Tokens.Count : o.MaxNewTokens, Math.Min(batch[i].Tokens.Count, o.MaxNewTokens));
            if (batch[i].FinishReason == "stop") Assert.True(batch[i].Tokens.Count < o.MaxNewTokens);
        }
    }

    [Fact]
    public void BeamSearchFindsAtLeastTheGreedySequencesLogProbabilityWhenExhaustive()
    {
        // Two tokens with as many beams as the vocabulary: beam search is then exhaustive over all two-token sequences.
        using var m = TestModels.Model(TestModels.Small(vocab: 40), seed: 3);
        var g = new TextGenerator(m, Llama3Tokenizer.Default);
        var p = new List<int> { 4, 8, 15 };
        var greedy = g.Generate(p, new GenerationOptions { MaxNewTokens = 2, StopTokens = Array.Empty<int>() });
        var beam = g.Generate(p, new GenerationOptions { MaxNewTokens = 2, NumBeams = 40, LengthPenalty = 0, StopTokens = Array.Empty<int>() });
        using var _ = no_grad();
        double LogProb(IReadOnlyList<int> gen)
        {
            var all = p.Concat(gen).Select(x => (long)x).ToArray();
            using var logits = m.Forward(tensor(all, new long[] { 1, all.Length }));
            using var lp = logits[0].log_softmax(-1);
            return Enumerable.Range(0, gen.Count).Sum(k => lp[p.Count - 1 + k, gen[k]].item<float>());
        }
        double best = double.NegativeInfinity;
        for (int a = 0; a < 40; a++)
        {
            var all = p.Select(x => (long)x).Append(a).ToArray();
            using var logits = m.Forward(tensor(all, new long[] { 1, all.Length }));
            using var lp = logits[0].log_softmax(-1);
            best = Math.Max(best, lp[p.Count - 1, a].item<float>() + lp[p.Count].max().item<float>());
        }
        Assert.Equal(best, LogProb(beam.Tokens), 4);
        Assert.True(LogProb(beam.Tokens) >= LogProb(greedy.Tokens) - 1e-5);
    }

    [Fact]
    public void BeamSearchFromPromptEmbeddingsEqualsBeamSearchFromIds()
    {
        // The speech path passes embeddings instead of ids; each prompt's rows are repeated per beam.
        using var m = TestModels.Model(TestModels.Small(vocab: 48), seed: 9);
        var g = new TextGenerator(m, Llama3Tokenizer.Default);
        var prompts = new[] { new List<int> { 1, 5, 9, 13 }, new List<int> { 2, 4, 6, 8 } };
        var o = new GenerationOptions { MaxNewTokens = 6, NumBeams = 3, StopTokens = new[] { 3, 11 } };
        var fromIds = g.GenerateBatch(prompts, o);
        using var _ = no_grad();
        using var ids = tensor(prompts.SelectMany(p => p.Select(x => (long)x)).ToArray(), new long[] { 2, 4 });
        using var emb = m.Embed(ids);
        var fromEmb = g.GenerateBatch(prompts, o, promptEmbeddings: emb);
        for (int i = 0; i < prompts.Length; i++) Assert.Equal(fromIds[i].Tokens, fromEmb[i].Tokens);
    }

    [Fact]
    public void BadBeamSettingsAreRefusedByValue()
    {
        var zero = Assert.Throws<ArgumentException>(() => new GenerationOptions { NumBeams = 0 }.Validate());
        Assert.Contains("number of beams 0", zero.Message);
        var sampled = Assert.Throws<ArgumentException>(() => new GenerationOptions { NumBeams = 3, Temperature = 0.7 }.Validate());
        Assert.Contains("temperature 0", sampled.Message);
        Assert.Throws<ArgumentException>(() => new GenerationOptions { LengthPenalty = double.NaN }.Validate());
    }

    [Fact]
    public void CacheReorderMovesEveryRow()
    {
        using var m = TestModels.Model(TestModels.Small(vocab: 32), seed: 2);
        using var cache = m.NewCache(3, 8);
        using var _ = no_grad();
        using var k = randn(3, 2, 4, 16);
        using var v = randn(3, 2, 4, 16);
        cache.Append(0, k, v);
        cache.Advance(4);
        using var sk = randn(3, 2, 5, 16);
        cache.SetStatic(1, sk.clone(), sk.clone());
        cache.Reorder(new long[] { 2, 0, 0 });
        var (ck, cv) = cache.Append(0, zeros(3, 2, 0, 16), zeros(3, 2, 0, 16));
        using var idx = tensor(new long[] { 2, 0, 0 });
        Assert.True(ck.allclose(k.index_select(0, idx), 0, 0));
        Assert.True(cv.allclose(v.index_select(0, idx), 0, 0));
        Assert.True(cache.GetStatic(1).K!.allclose(sk.index_select(0, idx), 0, 0));
        Assert.Throws<ArgumentException>(() => cache.Reorder(new long[] { 0, 1 }));
        Assert.Throws<ArgumentException>(() => cache.Reorder(new long[] { 0, 1, 3 }));
    }

    [Fact]
    public void SeededSamplingIsReproducible()
    {
        var (m, g) = Make();
        using var _m = m;
        var p = Prompt("Once upon a time");
        var o = new GenerationOptions { MaxNewTokens = 12, Temperature = 1.5, TopP = 0.95, TopK = 1000, Seed = 42, StopTokens = Array.Empty<int>() };
        var a = g.Generate(p, o);
        Assert.Equal(a.Tokens, g.Generate(p, o).Tokens);
        Assert.NotEqual(a.Tokens, g.Generate(p, o with { Seed = 43 }).Tokens);
    }

    [Fact]
    public void TopKOneEqualsGreedy()
    {
        var (m, g) = Make();
        using var _m = m;
        var p = Prompt("Numbers: 1 2 3");
        var greedy = g.Generate(p, new GenerationOptions { MaxNewTokens = 5, StopTokens = Array.Empty<int>() });
        var k1 = g.Generate(p, new GenerationOptions { MaxNewTokens = 5, Temperature = 0.7, TopK = 1, Seed = 5, StopTokens = Array.Empty<int>() });
        Assert.Equal(greedy.Tokens, k1.Tokens);
    }

    [Fact]
    public void BatchedPromptsOfDifferentLengthsMatchSingleRuns()
    {
        var (m, g) = Make();
        using var _m = m;
        var prompts = new[] { Prompt("A"), Prompt("A much longer prompt with several words in it"), Prompt("Short one") };
        var o = new GenerationOptions { MaxNewTokens = 5, StopTokens = Array.Empty<int>() };
        var batch = g.GenerateBatch(prompts, o);
        for (int i = 0; i < prompts.Length; i++) Assert.Equal(g.Generate(prompts[i], o).Tokens, batch[i].Tokens);
    }

    [Fact]
    public void StopTokensEndGeneration()
    {
        var (m, g) = Make();
        using var _m = m;
        var p = Prompt("Stop here");
        var free = g.Generate(p, new GenerationOptions { MaxNewTokens = 5, StopTokens = Array.Empty<int>() });
        var stopped = g.Generate(p, new GenerationOptions { MaxNewTokens = 5, StopTokens = new[] { free.Tokens[2] } });
        Assert.Equal("stop", stopped.FinishReason);
        Assert.Equal(free.Tokens.Take(free.Tokens.ToList().IndexOf(free.Tokens[2])), stopped.Tokens);
    }

    [Fact]
    public async Task StreamingYieldsTheSameText()
    {
        var (m, g) = Make();
        using var _m = m;
        var p = Prompt("Stream me");
        var o = new GenerationOptions { MaxNewTokens = 8, StopTokens = Array.Empty<int>() };
        var pieces = new List<string>();
        await foreach (var s in g.StreamAsync(p, o)) pieces.Add(s);
        Assert.Equal(g.Generate(p, o).Text, string.Concat(pieces));
    }

    [Fact]
    public void BadRequestsAreClearErrors()
    {
        var (m, g) = Make();
        using var _m = m;
        var e = Assert.Throws<ArgumentException>(() => g.Generate(Enumerable.Repeat(9906, 2040).ToList(), new GenerationOptions { MaxNewTokens = 20 }));
        Assert.Contains("context of 2048", e.Message);
        Assert.Throws<ArgumentException>(() => g.Generate(new List<int>(), new GenerationOptions()));
        Assert.Throws<ArgumentException>(() => g.Generate(new[] { 999_999 }, new GenerationOptions()));
        Assert.Throws<ArgumentException>(() => g.Generate(Prompt("x"), new GenerationOptions { TopP = 0 }));
        Assert.Throws<ArgumentException>(() => g.Generate(Prompt("x"), new GenerationOptions { Temperature = double.NaN }));
    }
}

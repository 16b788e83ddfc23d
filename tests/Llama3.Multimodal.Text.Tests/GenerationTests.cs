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

using System.Diagnostics;
using System.Runtime.CompilerServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>
/// Autoregressive generation with a preallocated KV cache: one prefill pass over the (left-padded) prompts, then one
/// token per step. Supports batches of prompts of different lengths, streaming, stop tokens and seeded sampling.
/// </summary>
public sealed class TextGenerator
{
    /// <summary>The model.</summary>
    public LlamaForCausalLM Model { get; }
    /// <summary>The tokenizer.</summary>
    public Llama3Tokenizer Tokenizer { get; }

    /// <summary>Creates a generator.</summary>
    public TextGenerator(LlamaForCausalLM model, Llama3Tokenizer tokenizer) { Model = model; Tokenizer = tokenizer; }

    /// <summary>Generates from one prompt; <paramref name="onToken"/> sees each new id as it comes.</summary>
    public GenerationResult Generate(IReadOnlyList<int> prompt, GenerationOptions? options = null, Action<int>? onToken = null,
        Func<KvCache, ForwardOptions, ForwardOptions>? prepare = null, Tensor? promptEmbeddings = null, CancellationToken cancel = default) =>
        GenerateBatch(new[] { prompt }, options, onToken == null ? null : (_, id) => onToken(id), prepare, promptEmbeddings, cancel)[0];

    /// <summary>Generates from several prompts at once (left-padded); <paramref name="onToken"/> gets (row, id).</summary>
    /// <param name="prompts">Token ids per prompt.</param>
    /// <param name="options">Decoding settings.</param>
    /// <param name="onToken">Called for each generated id.</param>
    /// <param name="prepare">Lets a multimodal model add media to the prefill forward options.</param>
    /// <param name="promptEmbeddings">Optional input embeddings [B, L, D] replacing the prompt ids (speech splice); rows left-padded like the ids.</param>
    /// <param name="cancel">Stops after the current step.</param>
    public IReadOnlyList<GenerationResult> GenerateBatch(IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions? options = null,
        Action<int, int>? onToken = null, Func<KvCache, ForwardOptions, ForwardOptions>? prepare = null, Tensor? promptEmbeddings = null,
        CancellationToken cancel = default)
    {
        options = (options ?? new GenerationOptions()).Validate();
        int b = prompts.Count;
        if (b == 0) return Array.Empty<GenerationResult>();
        int maxLen = prompts.Max(p => p.Count);
        if (prompts.Any(p => p.Count == 0)) throw new ArgumentException("a prompt is empty; it needs at least one token (e.g. <|begin_of_text|>).");
        int capacity = maxLen + options.MaxNewTokens;
        if (capacity > Model.Config.MaxPositionEmbeddings)
            throw new ArgumentException($"prompt of {maxLen} tokens plus {options.MaxNewTokens} new tokens exceeds the model's context of {Model.Config.MaxPositionEmbeddings} tokens.");
        foreach (var p in prompts)
            foreach (int id in p)
                if (id < 0 || id >= Model.Config.EmbeddingRows) throw new ArgumentException($"token id {id} is outside the model's embedding ({Model.Config.EmbeddingRows} rows).");
        var stops = new HashSet<int>(options.StopTokens ?? Tokenizer.StopIds);
        var dev = Model.Device;
        bool padded = prompts.Any(p => p.Count != maxLen);

        var ids = new long[b * maxLen];
        var valid = new bool[b * capacity];
        var pos = new long[b * maxLen];
        var nextPos = new long[b];
        for (int r = 0; r < b; r++)
        {
            int pad = maxLen - prompts[r].Count;
            for (int i = 0; i < maxLen; i++)
            {
                bool real = i >= pad;
                ids[r * maxLen + i] = real ? prompts[r][i - pad] : Tokenizer.PadId % Model.Config.EmbeddingRows;
                valid[r * capacity + i] = real;
                pos[r * maxLen + i] = real ? i - pad : 0;
            }
            for (int i = maxLen; i < capacity; i++) valid[r * capacity + i] = true;
            nextPos[r] = prompts[r].Count;
        }

        using var cache = Model.NewCache(b, capacity);
        using var sampler = new Sampler(options);
        using var validT = padded ? torch.tensor(valid, new long[] { b, capacity }).to(dev) : null;
        var outTokens = Enumerable.Range(0, b).Select(_ => new List<int>()).ToArray();
        var done = new bool[b];
        var finish = Enumerable.Repeat("length", b).ToArray();
        var sw = Stopwatch.StartNew();
        double prefill = 0;
        int steps = 0;
        using (torch.no_grad())
        {
            long[] next;
            using (var scope = NewDisposeScope())
            {
                var idT = torch.tensor(ids, new long[] { b, maxLen }).to(dev);
                var fo = new ForwardOptions
                {
                    Positions = torch.tensor(pos, new long[] { b, maxLen }).to(dev),
                    Cache = cache,
                    KeyValid = validT?.narrow(1, 0, maxLen),
                    LastOnly = true,
                };
                if (prepare != null) fo = prepare(cache, fo);
                var logits = promptEmbeddings is null ? Model.Forward(idT, fo) : Model.ForwardEmbeddings(promptEmbeddings, fo);
                next = sampler.Next(logits.select(1, 0));
            }
            prefill = sw.Elapsed.TotalSeconds;
            sw.Restart();
            for (int step = 0; ; step++)
            {
                for (int r = 0; r < b; r++)
                {
                    if (done[r]) continue;
                    int id = (int)next[r];
                    if (stops.Contains(id)) { done[r] = true; finish[r] = "stop"; continue; }
                    outTokens[r].Add(id);
                    onToken?.Invoke(r, id);
                    if (outTokens[r].Count >= options.MaxNewTokens) done[r] = true;
                }
                if (done.All(d => d) || cancel.IsCancellationRequested) break;
                using var scope = NewDisposeScope();
                var stepIds = new long[b];
                var stepPos = new long[b];
                for (int r = 0; r < b; r++) { stepIds[r] = next[r]; stepPos[r] = nextPos[r]++; }
                var fo = new ForwardOptions
                {
                    Positions = torch.tensor(stepPos, new long[] { b, 1 }).to(dev),
                    Cache = cache,
                    KeyValid = validT?.narrow(1, 0, cache.Length + 1),
                    LastOnly = true,
                };
                if (prepare != null) fo = prepare(cache, fo) with { Positions = fo.Positions, KeyValid = fo.KeyValid, Cache = cache };
                var logits = Model.Forward(torch.tensor(stepIds, new long[] { b, 1 }).to(dev), fo);
                next = sampler.Next(logits.select(1, 0));
                steps++;
            }
        }
        double decode = sw.Elapsed.TotalSeconds;
        return Enumerable.Range(0, b).Select(r => new GenerationResult
        {
            Tokens = outTokens[r],
            Text = Tokenizer.Decode(outTokens[r], skipSpecial: true),
            PromptTokens = prompts[r].Count,
            FinishReason = finish[r],
            PrefillSeconds = prefill,
            DecodeSeconds = decode,
            DecodeSteps = steps,
        }).ToList();
    }

    /// <summary>Generates from a prompt and yields text pieces as soon as their characters are complete.</summary>
    public async IAsyncEnumerable<string> StreamAsync(IReadOnlyList<int> prompt, GenerationOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancel = default)
    {
        var channel = System.Threading.Channels.Channel.CreateUnbounded<string>();
        var dec = Tokenizer.NewStreamingDecoder();
        var task = Task.Run(() =>
        {
            try
            {
                Generate(prompt, options, id =>
                {
                    string s = dec.Push(id);
                    if (s.Length > 0) channel.Writer.TryWrite(s);
                }, cancel: cancel);
                string tail = dec.Flush();
                if (tail.Length > 0) channel.Writer.TryWrite(tail);
                channel.Writer.Complete();
            }
            catch (Exception e)
            {
                channel.Writer.Complete(e);
            }
        }, CancellationToken.None);
        await foreach (var piece in channel.Reader.ReadAllAsync(cancel)) yield return piece;
        await task;
    }
}

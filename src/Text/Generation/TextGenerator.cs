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
        if (prompts.Count == 0) return Array.Empty<GenerationResult>();
        if (options.NumBeams > 1) return GenerateBeams(prompts, options, onToken, prepare, promptEmbeddings, cancel);
        var (b, maxLen, capacity, ids, valid, pos, nextPos) = Layout(prompts, options);
        var stops = new HashSet<int>(options.StopTokens ?? Tokenizer.StopIds);
        var dev = Model.Device;
        bool padded = prompts.Any(p => p.Count != maxLen);

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
                var logits = DecodeStep(next, nextPos, cache, validT, prepare);
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

    /// <summary>
    /// One cached decode step: feeds <paramref name="ids"/> (one per row) at each row's next position (advanced here),
    /// with the padding mask so far and the caller's media, and returns the last-position logits [B, 1, V].
    /// </summary>
    Tensor DecodeStep(long[] ids, long[] nextPos, KvCache cache, Tensor? validT, Func<KvCache, ForwardOptions, ForwardOptions>? prepare)
    {
        int b = ids.Length;
        var dev = Model.Device;
        var stepPos = new long[b];
        for (int r = 0; r < b; r++) stepPos[r] = nextPos[r]++;
        var fo = new ForwardOptions
        {
            Positions = torch.tensor(stepPos, new long[] { b, 1 }).to(dev),
            Cache = cache,
            KeyValid = validT?.narrow(1, 0, cache.Length + 1),
            LastOnly = true,
        };
        if (prepare != null) fo = prepare(cache, fo) with { Positions = fo.Positions, KeyValid = fo.KeyValid, Cache = cache };
        return Model.Forward(torch.tensor(ids, new long[] { b, 1 }).to(dev), fo);
    }

    /// <summary>Checks the prompts and lays them out left-padded: ids and positions [b, maxLen], key validity [b, capacity].</summary>
    (int B, int MaxLen, int Capacity, long[] Ids, bool[] Valid, long[] Pos, long[] NextPos) Layout(IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options)
    {
        int b = prompts.Count;
        int maxLen = prompts.Max(p => p.Count);
        if (prompts.Any(p => p.Count == 0)) throw new ArgumentException("a prompt is empty; it needs at least one token (e.g. <|begin_of_text|>).");
        int capacity = maxLen + options.MaxNewTokens;
        if (capacity > Model.Config.MaxPositionEmbeddings)
            throw new ArgumentException($"prompt of {maxLen} tokens plus {options.MaxNewTokens} new tokens exceeds the model's context of {Model.Config.MaxPositionEmbeddings} tokens.");
        foreach (var p in prompts)
            foreach (int id in p)
                if (id < 0 || id >= Model.Config.EmbeddingRows) throw new ArgumentException($"token id {id} is outside the model's embedding ({Model.Config.EmbeddingRows} rows).");
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
        return (b, maxLen, capacity, ids, valid, pos, nextPos);
    }

    /// <summary>
    /// Beam search (<see cref="GenerationOptions.NumBeams"/> = W): each prompt becomes W consecutive rows of one batch
    /// (row g·W + j is beam j of prompt g; <paramref name="prepare"/> sees a cache of b·W rows and must give media for
    /// them, and <paramref name="promptEmbeddings"/> rows are repeated W times). Each step extends every live beam by
    /// every token, keeps the W best continuations per prompt that do not stop, and moves the ones that stop to the
    /// prompt's finished list, scored by summed log-probability / length^<see cref="GenerationOptions.LengthPenalty"/>.
    /// A prompt is done when it has W finished candidates and no live beam can still beat the worst of them (Hugging
    /// Face's <c>early_stopping=False</c> rule), or at <see cref="GenerationOptions.MaxNewTokens"/>, where live beams
    /// count as finished ("length"). The KV cache is reordered in place after each step.
    /// </summary>
    IReadOnlyList<GenerationResult> GenerateBeams(IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options, Action<int, int>? onToken,
        Func<KvCache, ForwardOptions, ForwardOptions>? prepare, Tensor? promptEmbeddings, CancellationToken cancel)
    {
        int w = options.NumBeams, groups = prompts.Count;
        var rowsPrompts = prompts.SelectMany(p => Enumerable.Repeat(p, w)).ToList();
        var (b, maxLen, capacity, ids, valid, pos, nextPos) = Layout(rowsPrompts, options);
        var stops = new HashSet<int>(options.StopTokens ?? Tokenizer.StopIds);
        var dev = Model.Device;
        bool padded = prompts.Any(p => p.Count != maxLen);
        int top = 0;
        var seqs = Enumerable.Range(0, b).Select(_ => new List<int>()).ToArray();
        var scores = Enumerable.Range(0, b).Select(r => r % w == 0 ? 0.0 : double.NegativeInfinity).ToArray();
        var finished = Enumerable.Range(0, groups).Select(_ => new List<(List<int> Tokens, double Score, string Reason)>()).ToArray();
        var groupDone = new bool[groups];
        double Normalised(double sum, int length) => options.LengthPenalty == 0 ? sum : sum / Math.Pow(length, options.LengthPenalty);
        void AddFinished(int g, List<int> tokens, double sum, string reason)
        {
            var f = finished[g];
            f.Add((tokens, Normalised(sum, tokens.Count + (reason == "stop" ? 1 : 0)), reason));
            f.Sort((x, y) => y.Score.CompareTo(x.Score));
            if (f.Count > w) f.RemoveAt(f.Count - 1);
        }

        using var cache = Model.NewCache(b, capacity);
        using var validT = padded ? torch.tensor(valid, new long[] { b, capacity }).to(dev) : null;
        using var rowEmbeddings = promptEmbeddings?.repeat_interleave(w, 0);
        var sw = Stopwatch.StartNew();
        double prefill = 0;
        int steps = 0;
        using (torch.no_grad())
        {
            float[] topLogp;
            long[] topIds;
            void TopOf(Tensor logits)
            {
                var lp = logits.select(1, 0).to(CPU).to_type(ScalarType.Float32).log_softmax(-1);
                top = (int)Math.Min(2 * w, lp.shape[1]);
                var (v, i) = lp.topk(top, -1);
                topLogp = v.data<float>().ToArray();
                topIds = i.data<long>().ToArray();
            }
            using (var scope = NewDisposeScope())
            {
                var fo = new ForwardOptions
                {
                    Positions = torch.tensor(pos, new long[] { b, maxLen }).to(dev),
                    Cache = cache,
                    KeyValid = validT?.narrow(1, 0, maxLen),
                    LastOnly = true,
                };
                if (prepare != null) fo = prepare(cache, fo);
                var logits = rowEmbeddings is null ? Model.Forward(torch.tensor(ids, new long[] { b, maxLen }).to(dev), fo) : Model.ForwardEmbeddings(rowEmbeddings, fo);
                TopOf(logits);
            }
            prefill = sw.Elapsed.TotalSeconds;
            sw.Restart();
            var parents = new long[b];
            var nextIds = new long[b];
            for (int step = 0; ; step++)
            {
                int length = step + 1;   // tokens of each candidate after this step
                for (int g = 0; g < groups; g++)
                {
                    int first = g * w;
                    if (groupDone[g])
                    {
                        for (int j = 0; j < w; j++) { parents[first + j] = first + j; nextIds[first + j] = Tokenizer.PadId % Model.Config.EmbeddingRows; }
                        continue;
                    }
                    // The 2W best (beam, token) continuations of this prompt (enough to keep W that do not stop) are
                    // among the 2W best tokens of each beam.
                    var best = new List<(double Score, int Beam, int Token)>();
                    for (int j = 0; j < w; j++)
                    {
                        double s0 = scores[first + j];
                        if (double.IsNegativeInfinity(s0)) continue;
                        for (int k = 0; k < top; k++)
                            best.Add((s0 + topLogp[(first + j) * top + k], j, (int)topIds[(first + j) * top + k]));
                    }
                    best.Sort((x, y) => y.Score.CompareTo(x.Score));
                    var kept = new List<(double Score, int Beam, int Token)>();
                    for (int k = 0; k < best.Count && kept.Count < w; k++)
                    {
                        var (s, j, t) = best[k];
                        if (stops.Contains(t)) { if (k < w) AddFinished(g, new List<int>(seqs[first + j]), s, "stop"); }
                        else kept.Add(best[k]);
                    }
                    bool atLimit = length >= options.MaxNewTokens;
                    var newSeqs = new List<int>[w];
                    for (int j = 0; j < w; j++)
                    {
                        if (j < kept.Count)
                        {
                            var (s, pj, t) = kept[j];
                            newSeqs[j] = new List<int>(seqs[first + pj]) { t };
                            parents[first + j] = first + pj;
                            nextIds[first + j] = t;
                            scores[first + j] = s;
                        }
                        else
                        {
                            newSeqs[j] = new List<int>();
                            parents[first + j] = first;
                            nextIds[first + j] = Tokenizer.PadId % Model.Config.EmbeddingRows;
                            scores[first + j] = double.NegativeInfinity;
                        }
                    }
                    for (int j = 0; j < w; j++) seqs[first + j] = newSeqs[j];
                    double bestLive = kept.Count == 0 ? double.NegativeInfinity : kept[0].Score;
                    if (atLimit)
                    {
                        for (int j = 0; j < kept.Count; j++) AddFinished(g, seqs[first + j], kept[j].Score, "length");
                        groupDone[g] = true;
                    }
                    else if (kept.Count == 0 || (finished[g].Count >= w && finished[g][^1].Score >= Normalised(bestLive, length)))
                        groupDone[g] = true;
                }
                if (groupDone.All(d => d) || cancel.IsCancellationRequested) break;
                using var scope = NewDisposeScope();
                cache.Reorder(parents);
                TopOf(DecodeStep(nextIds, nextPos, cache, validT, prepare));
                steps++;
            }
        }
        double decode = sw.Elapsed.TotalSeconds;
        var results = new List<GenerationResult>();
        for (int g = 0; g < groups; g++)
        {
            // Cancelled before the prompt finished: its live beams count as they are.
            if (finished[g].Count == 0)
                for (int j = 0; j < w; j++)
                    if (!double.IsNegativeInfinity(scores[g * w + j])) AddFinished(g, seqs[g * w + j], scores[g * w + j], "length");
            var (tokens, _, reason) = finished[g].Count > 0 ? finished[g][0] : (new List<int>(), 0.0, "length");
            foreach (int id in tokens) onToken?.Invoke(g, id);
            results.Add(new GenerationResult
            {
                Tokens = tokens,
                Text = Tokenizer.Decode(tokens, skipSpecial: true),
                PromptTokens = prompts[g].Count,
                FinishReason = reason,
                PrefillSeconds = prefill,
                DecodeSeconds = decode,
                DecodeSteps = steps,
            });
        }
        return results;
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

using System.Collections.Concurrent;
using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>
/// Continuous batching over one text decoder: requests submitted from any thread join a running batch between decode
/// steps and leave it as soon as they finish, so concurrent requests share each decode step (one forward pass for all
/// active rows) instead of waiting for each other. One loop thread owns the model; <see cref="RunExclusiveAsync{T}"/>
/// runs other work on the same model (an image or audio request) between steps.
/// </summary>
/// <remarks>
/// Each new prompt is prefilled on its own, then its keys and values are copied into a free row of a shared KV cache so
/// that its last prompt token sits just before the shared write position; every row carries its own positions, and a
/// key-validity mask hides the columns that belong to no token of the row. Active rows stay packed at the front of the
/// cache, so a step costs what the active rows cost. When the write position reaches the capacity, every row is moved
/// left by the column where the oldest row starts. Each request samples with its own <see cref="GenerationOptions"/>
/// (temperature, top-k, top-p, seed, stop tokens, max new tokens); greedy rows give the same tokens as
/// <see cref="TextGenerator.Generate"/> up to floating-point summation order. Beam search is not supported here.
/// A request whose token is cancelled leaves the batch before the next decode step.
/// </remarks>
public sealed class ContinuousBatcher : IDisposable
{
    abstract class Job { }

    sealed class Exclusive : Job
    {
        public required Action Run { get; init; }
    }

    sealed class Request : Job
    {
        public required IReadOnlyList<int> Prompt { get; init; }
        public required GenerationOptions Options { get; init; }
        public Action<int>? OnToken { get; init; }
        public CancellationToken Cancel { get; init; }
        public TaskCompletionSource<GenerationResult> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public Sampler? Sampler;
        public HashSet<int> Stops = new();
        public readonly List<int> Tokens = new();
        public int Start;
        public long NextPosition;
        public long Next;
        public double PrefillSeconds;
        public readonly Stopwatch Clock = new();
        public int Steps;
    }

    readonly ConcurrentQueue<Job> _queue = new();
    readonly SemaphoreSlim _signal = new(0);
    readonly CancellationTokenSource _stop = new();
    readonly Thread _thread;
    readonly List<Request> _rows = new();
    KvCache? _cache;
    long _steps, _rowSteps;
    int _waiting;

    /// <summary>The decoder.</summary>
    public LlamaForCausalLM Model { get; }
    /// <summary>The tokenizer (stop tokens and result text).</summary>
    public Llama3Tokenizer Tokenizer { get; }
    /// <summary>Most requests decoded together.</summary>
    public int MaxBatch { get; }
    /// <summary>Columns of the shared KV cache: the longest prompt plus new tokens one request may have.</summary>
    public int Capacity { get; }
    /// <summary>Decode steps run so far (one forward pass each, whatever the number of rows).</summary>
    public long Steps => Interlocked.Read(ref _steps);
    /// <summary>Rows decoded so far, summed over steps (<see cref="RowSteps"/> / <see cref="Steps"/> = mean batch size).</summary>
    public long RowSteps => Interlocked.Read(ref _rowSteps);
    /// <summary>Requests submitted and not yet finished (waiting or decoding).</summary>
    public int Pending => Volatile.Read(ref _waiting);

    /// <summary>Starts the loop thread.</summary>
    /// <param name="model">The decoder (owned by the caller; use it only through this batcher while it runs).</param>
    /// <param name="tokenizer">Its tokenizer.</param>
    /// <param name="maxBatch">Most requests decoded together (≥ 1).</param>
    /// <param name="capacity">KV-cache columns (default and maximum: the model's context length).</param>
    public ContinuousBatcher(LlamaForCausalLM model, Llama3Tokenizer tokenizer, int maxBatch = 8, int? capacity = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (maxBatch < 1) throw new ArgumentException($"max batch {maxBatch} must be ≥ 1.");
        if (capacity is < 2) throw new ArgumentException($"capacity {capacity} must be ≥ 2.");
        Model = model;
        Tokenizer = tokenizer;
        MaxBatch = maxBatch;
        Capacity = Math.Min(capacity ?? model.Config.MaxPositionEmbeddings, model.Config.MaxPositionEmbeddings);
        _thread = new Thread(Loop) { IsBackground = true, Name = "continuous-batcher" };
        _thread.Start();
    }

    /// <summary>
    /// Queues <paramref name="prompt"/> and completes with its result once it stops, reaches its max new tokens, or
    /// fails. <paramref name="onToken"/> sees each new id on the loop thread (keep it short). Cancelling
    /// <paramref name="cancel"/> drops the request before the next decode step; the task is then cancelled.
    /// Throws <see cref="ArgumentException"/> at once for an empty prompt, ids outside the embedding, beam search, or a
    /// prompt plus new tokens over <see cref="Capacity"/>.
    /// </summary>
    public Task<GenerationResult> GenerateAsync(IReadOnlyList<int> prompt, GenerationOptions? options = null, Action<int>? onToken = null,
        CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        options = (options ?? new GenerationOptions()).Validate();
        if (options.NumBeams > 1) throw new ArgumentException("beam search is not supported by the continuous batcher; use TextGenerator.");
        if (prompt.Count == 0) throw new ArgumentException("a prompt is empty; it needs at least one token (e.g. <|begin_of_text|>).");
        if (prompt.Count + options.MaxNewTokens > Capacity)
            throw new ArgumentException($"prompt of {prompt.Count} tokens plus {options.MaxNewTokens} new tokens exceeds the context of {Capacity} tokens.");
        foreach (int id in prompt)
            if (id < 0 || id >= Model.Config.EmbeddingRows) throw new ArgumentException($"token id {id} is outside the model's embedding ({Model.Config.EmbeddingRows} rows).");
        ObjectDisposedException.ThrowIf(_stop.IsCancellationRequested, this);
        var r = new Request { Prompt = prompt.ToArray(), Options = options, OnToken = onToken, Cancel = cancel };
        if (options.MaxNewTokens == 0)
        {
            r.Done.SetResult(Result(r, "length"));
            return r.Done.Task;
        }
        Interlocked.Increment(ref _waiting);
        _queue.Enqueue(r);
        _signal.Release();
        return r.Done.Task;
    }

    /// <summary>
    /// Runs <paramref name="work"/> on the loop thread between two decode steps (active rows pause meanwhile), in queue
    /// order with the requests: the way to use the same model for other work (a request with media) while the batcher runs.
    /// </summary>
    public Task<T> RunExclusiveAsync<T>(Func<T> work, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        ObjectDisposedException.ThrowIf(_stop.IsCancellationRequested, this);
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        Interlocked.Increment(ref _waiting);
        _queue.Enqueue(new Exclusive
        {
            Run = () =>
            {
                try
                {
                    if (cancel.IsCancellationRequested) done.TrySetCanceled(cancel);
                    else done.TrySetResult(work());
                }
                catch (OperationCanceledException) when (cancel.IsCancellationRequested) { done.TrySetCanceled(cancel); }
                catch (Exception e) { done.TrySetException(e); }
            },
        });
        _signal.Release();
        return done.Task;
    }

    void Loop()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                if (_rows.Count == 0 && _queue.IsEmpty)
                {
                    try { _signal.Wait(_stop.Token); }
                    catch (OperationCanceledException) { break; }
                }
                while (_queue.TryPeek(out var job) && (job is Exclusive || _rows.Count < MaxBatch))
                {
                    _queue.TryDequeue(out _);
                    if (job is Exclusive ex)
                    {
                        Interlocked.Decrement(ref _waiting);
                        ex.Run();
                        continue;
                    }
                    var q = (Request)job;
                    if (q.Cancel.IsCancellationRequested) { Finish(q, null, cancelled: true); continue; }
                    try { Admit(q); }
                    catch (Exception e) { Fail(q, e); }
                }
                for (int i = _rows.Count - 1; i >= 0; i--)
                    if (_rows[i].Cancel.IsCancellationRequested) Remove(i, null, cancelled: true);
                if (_rows.Count == 0) continue;
                try { Step(); }
                catch (Exception e)
                {
                    // A failed forward pass fails every active row; the cache starts again empty.
                    for (int i = _rows.Count - 1; i >= 0; i--) { var q = _rows[i]; _rows.RemoveAt(i); Fail(q, e); }
                    _cache?.Reset();
                }
            }
        }
        finally
        {
            var gone = new ObjectDisposedException(nameof(ContinuousBatcher));
            foreach (var q in _rows) Fail(q, gone);
            _rows.Clear();
            while (_queue.TryDequeue(out var job))
            {
                if (job is Request q) Fail(q, gone);
                else ((Exclusive)job).Run();
            }
            _cache?.Dispose();
            _cache = null;
        }
    }

    /// <summary>Prefills <paramref name="q"/> alone, takes its first token, and moves its keys and values into a free row.</summary>
    void Admit(Request q)
    {
        var clock = Stopwatch.StartNew();
        int p = q.Prompt.Count;
        q.Sampler = new Sampler(q.Options);
        q.Stops = new HashSet<int>(q.Options.StopTokens ?? Tokenizer.StopIds);
        var dev = Model.Device;
        using var prefill = Model.NewCache(1, p);
        long first;
        using (torch.no_grad())
        using (var scope = NewDisposeScope())
        {
            var ids = torch.tensor(q.Prompt.Select(x => (long)x).ToArray(), new long[] { 1, p }).to(dev);
            var fo = new ForwardOptions { Positions = Scalars.Arange(0, p, dev).unsqueeze(0), Cache = prefill, LastOnly = true };
            first = q.Sampler.Next(Model.Forward(ids, fo).select(1, 0))[0];
        }
        q.PrefillSeconds = clock.Elapsed.TotalSeconds;
        q.Clock.Start();
        if (Accept(q, first)) return;
        _cache ??= Model.NewCache(MaxBatch, Capacity);
        if (_rows.Count == 0) _cache.Reset();
        if (_cache.Length < p)
        {
            int d = p - _cache.Length;
            _cache.Shift(d);
            foreach (var r in _rows) r.Start += d;
        }
        int row = _rows.Count;
        _cache.CopyRow(prefill, 0, 0, row, _cache.Length - p, p);
        q.Start = _cache.Length - p;
        q.NextPosition = p;
        q.Next = first;
        _rows.Add(q);
    }

    /// <summary>Takes a sampled id for <paramref name="q"/>; returns true (and completes it) when it is done.</summary>
    bool Accept(Request q, long id)
    {
        if (q.Stops.Contains((int)id)) { Finish(q, "stop"); return true; }
        q.Tokens.Add((int)id);
        try { q.OnToken?.Invoke((int)id); }
        catch (Exception e) { Fail(q, e); return true; }
        if (q.Tokens.Count >= q.Options.MaxNewTokens) { Finish(q, "length"); return true; }
        return false;
    }

    void Step()
    {
        var cache = _cache!;
        if (cache.Length >= cache.Capacity)
        {
            int s = _rows.Min(r => r.Start);
            cache.Shift(-s);
            foreach (var r in _rows) r.Start -= s;
        }
        int b = _rows.Count, len = cache.Length;
        var ids = new long[b];
        var pos = new long[b];
        bool masked = false;
        for (int r = 0; r < b; r++)
        {
            ids[r] = _rows[r].Next;
            pos[r] = _rows[r].NextPosition++;
            masked |= _rows[r].Start > 0;
        }
        long[] next;
        var greedy = new bool[b];
        using (torch.no_grad())
        using (var scope = NewDisposeScope())
        {
            var dev = Model.Device;
            Tensor? keyValid = null;
            if (masked)
            {
                var valid = new bool[b * (len + 1)];
                for (int r = 0; r < b; r++)
                    for (int c = _rows[r].Start; c <= len; c++) valid[r * (len + 1) + c] = true;
                keyValid = torch.tensor(valid, new long[] { b, len + 1 }).to(dev);
            }
            var fo = new ForwardOptions { Positions = torch.tensor(pos, new long[] { b, 1 }).to(dev), Cache = cache, KeyValid = keyValid, LastOnly = true };
            var logits = Model.Forward(torch.tensor(ids, new long[] { b, 1 }).to(dev), fo).select(1, 0);   // [b, V]
            next = new long[b];
            bool anyGreedy = false;
            for (int r = 0; r < b; r++) anyGreedy |= greedy[r] = _rows[r].Options.Temperature == 0;
            long[]? argmax = anyGreedy ? logits.argmax(-1).to(CPU).data<long>().ToArray() : null;
            for (int r = 0; r < b; r++)
                next[r] = greedy[r] ? argmax![r] : _rows[r].Sampler!.Next(logits.narrow(0, r, 1))[0];
        }
        Interlocked.Increment(ref _steps);
        Interlocked.Add(ref _rowSteps, b);
        var finished = new List<int>();
        for (int r = 0; r < b; r++)
        {
            var q = _rows[r];
            q.Steps++;
            // Accept completes the request itself when it is done.
            if (Accept(q, next[r])) finished.Add(r);
            else q.Next = next[r];
        }
        for (int i = finished.Count - 1; i >= 0; i--) Detach(finished[i]);
    }

    /// <summary>Takes row <paramref name="i"/> out of the batch, moving the last row into its place.</summary>
    void Detach(int i)
    {
        int last = _rows.Count - 1;
        if (i != last)
        {
            var moved = _rows[last];
            int count = _cache!.Length - moved.Start;
            _cache.CopyRow(_cache, last, moved.Start, i, moved.Start, count);
            _rows[i] = moved;
        }
        _rows.RemoveAt(last);
    }

    void Remove(int i, string? reason, bool cancelled)
    {
        var q = _rows[i];
        Detach(i);
        Finish(q, reason, cancelled);
    }

    GenerationResult Result(Request q, string reason) => new()
    {
        Tokens = q.Tokens.ToArray(),
        Text = Tokenizer.Decode(q.Tokens, skipSpecial: true),
        PromptTokens = q.Prompt.Count,
        FinishReason = reason,
        PrefillSeconds = q.PrefillSeconds,
        DecodeSeconds = q.Clock.Elapsed.TotalSeconds,
        DecodeSteps = q.Steps,
    };

    void Finish(Request q, string? reason, bool cancelled = false)
    {
        q.Sampler?.Dispose();
        q.Sampler = null;
        Interlocked.Decrement(ref _waiting);
        if (cancelled) q.Done.TrySetCanceled(q.Cancel);
        else q.Done.TrySetResult(Result(q, reason ?? "length"));
    }

    void Fail(Request q, Exception e)
    {
        q.Sampler?.Dispose();
        q.Sampler = null;
        Interlocked.Decrement(ref _waiting);
        q.Done.TrySetException(e);
    }

    /// <summary>Stops the loop (requests still queued or running fail with <see cref="ObjectDisposedException"/>) and frees the cache.</summary>
    public void Dispose()
    {
        if (_stop.IsCancellationRequested) return;
        _stop.Cancel();
        _signal.Release();
        if (Thread.CurrentThread != _thread) _thread.Join();
        _stop.Dispose();
        _signal.Dispose();
    }
}

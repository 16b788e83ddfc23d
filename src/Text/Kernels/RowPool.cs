using System.Diagnostics;

namespace Llama3.Multimodal.Text;

/// <summary>
/// A small persistent pool of worker threads that split a range of rows with the calling thread. Work is handed out in
/// chunks from a shared counter (a descheduled thread on a busy machine does not hold up the others), the caller works
/// too, and nothing is allocated per call: the job is a function pointer and a pointer to the caller's state, which
/// stays valid because the caller returns only when every chunk is done. One job runs at a time; a second caller that
/// finds the pool busy runs its rows on its own thread.
/// </summary>
internal sealed unsafe class RowPool
{
    static RowPool? _shared;
    static readonly object SharedLock = new();

    /// <summary>The process-wide pool: one thread per processor, the caller included.</summary>
    public static RowPool Shared
    {
        get
        {
            if (_shared is { } p) return p;
            lock (SharedLock) return _shared ??= new RowPool(Environment.ProcessorCount);
        }
    }

    readonly SemaphoreSlim[] _go;
    readonly ManualResetEventSlim _done = new(false, 200);
    readonly object _busy = new();
    delegate*<void*, int, int, void> _fn;
    void* _state;
    int _rows, _grain, _next, _pending;

    /// <summary>Threads working on a job, the caller included.</summary>
    public int Threads { get; }

    RowPool(int threads)
    {
        Threads = Math.Max(1, threads);
        _go = new SemaphoreSlim[Threads - 1];
        for (int i = 0; i < _go.Length; i++)
        {
            _go[i] = new SemaphoreSlim(0);
            var go = _go[i];
            var t = new Thread(() => Worker(go)) { IsBackground = true, Name = $"row-pool-{i + 1}" };
            t.Start();
        }
    }

    /// <summary>
    /// Runs <c>fn(state, r0, r1)</c> over [0, rows) in chunks of <paramref name="grain"/> rows (the last may be shorter)
    /// on up to <paramref name="maxThreads"/> threads; returns when all are done.
    /// </summary>
    public void Run(delegate*<void*, int, int, void> fn, void* state, int rows, int grain, int maxThreads = int.MaxValue)
    {
        if (rows <= 0) return;
        grain = Math.Max(1, grain);
        int helpers = Math.Min(Math.Min(_go.Length, maxThreads - 1), (rows + grain - 1) / grain - 1);
        if (helpers <= 0 || !Monitor.TryEnter(_busy))
        {
            fn(state, 0, rows);
            return;
        }
        try
        {
            _fn = fn; _state = state; _rows = rows; _grain = grain;
            Volatile.Write(ref _next, 0);
            Volatile.Write(ref _pending, helpers);
            _done.Reset();
            for (int i = 0; i < helpers; i++) _go[i].Release();
            Work();
            long until = Stopwatch.GetTimestamp() + SpinMicroseconds * Stopwatch.Frequency / 1_000_000;
            while (Volatile.Read(ref _pending) != 0 && Stopwatch.GetTimestamp() < until) Thread.SpinWait(16);
            _done.Wait();   // always: a worker that has just counted down may not have set the event yet
        }
        finally { Monitor.Exit(_busy); }
    }

    void Work()
    {
        var fn = _fn;
        void* state = _state;
        int rows = _rows, grain = _grain;
        while (true)
        {
            int start = Interlocked.Add(ref _next, grain) - grain;
            if (start >= rows) return;
            fn(state, start, Math.Min(rows, start + grain));
        }
    }

    /// <summary>How long (µs) an idle worker spins for the next job before it blocks.</summary>
    public static int SpinMicroseconds { get; set; } = 200;

    void Worker(SemaphoreSlim go)
    {
        while (true)
        {
            // Spin briefly first: the products of one decode step follow each other within tens of µs, and waking a
            // blocked thread costs about as much as a small product.
            long spin = SpinMicroseconds * Stopwatch.Frequency / 1_000_000;
            if (spin > 0 && go.CurrentCount == 0)
            {
                long until = Stopwatch.GetTimestamp() + spin;
                while (go.CurrentCount == 0 && Stopwatch.GetTimestamp() < until) Thread.SpinWait(16);
            }
            go.Wait();
            try { Work(); }
            finally
            {
                if (Interlocked.Decrement(ref _pending) == 0) _done.Set();
            }
        }
    }
}

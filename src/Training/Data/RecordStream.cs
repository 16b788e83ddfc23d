using System.Collections.Concurrent;

namespace Llama3.Multimodal.Training;

/// <summary>
/// Endless epochs over a record list in a seeded order (a fresh Fisher–Yates permutation per epoch from (seed, epoch)),
/// with each record prepared (e.g. tokenised, decoded) ahead on background worker threads (inside <see cref="BackgroundWork"/>'s
/// safe windows) and handed out in stream order, at most <c>prefetch</c> ahead. Starting at a cursor reproduces the exact
/// stream from there, which is what resuming needs.
/// </summary>
internal sealed class RecordStream<TRecord, TItem> : IDisposable
{
    readonly IReadOnlyList<TRecord> _records;
    readonly Func<TRecord, long, long, TItem> _prepare;
    readonly long _seed;
    readonly bool _shuffle;
    readonly BlockingCollection<Slot> _queue;
    readonly BlockingCollection<Slot> _jobs = new();
    readonly CancellationTokenSource _cts = new();
    readonly List<Thread> _threads = new();

    sealed class Slot(long epoch, long index, TRecord record)
    {
        public readonly long Epoch = epoch, Index = index;
        public readonly TRecord Record = record;
        public readonly TaskCompletionSource<(TItem? Item, Exception? Error)> Done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    public RecordStream(IReadOnlyList<TRecord> records, Func<TRecord, TItem> prepare, long seed, bool shuffle, int prefetch, long epoch, long index, int workers = 1)
        : this(records, (r, _, _) => prepare(r), seed, shuffle, prefetch, epoch, index, workers) { }

    /// <summary>A stream whose <paramref name="prepare"/> also gets the record's (epoch, index) in the stream, e.g. to draw
    /// augmentation that a resumed run reproduces (<see cref="Draw"/>); <paramref name="workers"/> threads prepare records.</summary>
    public RecordStream(IReadOnlyList<TRecord> records, Func<TRecord, long, long, TItem> prepare, long seed, bool shuffle, int prefetch, long epoch, long index, int workers = 1)
    {
        _records = records; _prepare = prepare; _seed = seed; _shuffle = shuffle;
        _queue = new(prefetch);
        for (int w = 0; w < Math.Max(1, workers); w++)
        {
            var t = new Thread(Work) { IsBackground = true, Name = $"record-prepare-{w}" };
            _threads.Add(t);
            t.Start();
        }
        var producer = new Thread(() => Produce(epoch, index)) { IsBackground = true, Name = "record-order" };
        _threads.Add(producer);
        producer.Start();
    }

    public static long[] Order(int n, long seed, long epoch, bool shuffle)
    {
        var order = new long[n];
        for (int i = 0; i < n; i++) order[i] = i;
        if (!shuffle) return order;
        ulong state = (ulong)seed * 0x9E3779B97F4A7C15UL ^ (ulong)(epoch + 1) * 0xBF58476D1CE4E5B9UL;
        for (int i = n - 1; i > 0; i--)
        {
            int j = (int)(SplitMix(ref state) % (ulong)(i + 1));
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    /// <summary>A uniform draw in [0, 1) determined by (seed, epoch, index): the same in a resumed run as in an uninterrupted one.</summary>
    public static double Draw(long seed, long epoch, long index)
    {
        ulong state = (ulong)seed * 0xD1B54A32D192ED03UL ^ (ulong)(epoch + 1) * 0x9E3779B97F4A7C15UL ^ (ulong)(index + 1) * 0xBF58476D1CE4E5B9UL;
        return (SplitMix(ref state) >> 11) * (1.0 / (1UL << 53));
    }

    static ulong SplitMix(ref ulong s)
    {
        ulong z = s += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    void Produce(long epoch, long index)
    {
        // Every allocation of this thread happens inside a BackgroundWork ticket; only the hand-over to the queue (bounded
        // by the prefetch) waits outside, so the training thread can take items meanwhile.
        var ct = _cts.Token;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                long[] order;
                using (BackgroundWork.Enter(ct)) order = Order(_records.Count, _seed, epoch, _shuffle);
                for (long i = index; i < order.Length; i++)
                {
                    Slot slot;
                    using (BackgroundWork.Enter(ct)) slot = new Slot(epoch, i, _records[(int)order[i]]);
                    while (!_queue.TryAdd(slot, 50, ct)) { }
                    _jobs.Add(slot, ct);
                }
                epoch++; index = 0;
            }
        }
        catch (OperationCanceledException) { }
    }

    void Work()
    {
        var ct = _cts.Token;
        try
        {
            foreach (var slot in _jobs.GetConsumingEnumerable(ct))
            {
                using (BackgroundWork.Enter(ct))
                {
                    try { slot.Done.SetResult((_prepare(slot.Record, slot.Epoch, slot.Index), null)); }
                    catch (Exception e) { slot.Done.SetResult((default, e)); }
                }
            }
        }
        catch (OperationCanceledException) { }
    }

    /// <summary>Next prepared record with its (epoch, index).</summary>
    public (long Epoch, long Index, TItem Item) Next()
    {
        Slot slot;
        using (BackgroundWork.Quiet())
        {
            slot = _queue.Take();
            slot.Done.Task.Wait();
        }
        var (item, err) = slot.Done.Task.Result;
        if (err is not null) throw new DataFormatException($"preparing record {slot.Index} of epoch {slot.Epoch}: {err.Message}", err);
        return (slot.Epoch, slot.Index, item!);
    }

    public void Dispose()
    {
        _cts.Cancel();
        foreach (var t in _threads) t.Join();
        _queue.Dispose();
        _jobs.Dispose();
        _cts.Dispose();
    }
}

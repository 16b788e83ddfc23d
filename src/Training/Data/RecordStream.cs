using System.Collections.Concurrent;

namespace Llama3.Multimodal.Training;

/// <summary>
/// Endless epochs over a record list in a seeded order (a fresh Fisher–Yates permutation per epoch from (seed, epoch)),
/// with each record prepared (e.g. tokenised) ahead on a background thread (inside <see cref="BackgroundWork"/>'s safe windows). Starting at a cursor reproduces the exact
/// stream from there, which is what resuming needs.
/// </summary>
internal sealed class RecordStream<TRecord, TItem> : IDisposable
{
    readonly IReadOnlyList<TRecord> _records;
    readonly Func<TRecord, long, long, TItem> _prepare;
    readonly long _seed;
    readonly bool _shuffle;
    readonly BlockingCollection<(long Epoch, long Index, TItem? Item, Exception? Error)> _queue;
    readonly CancellationTokenSource _cts = new();
    readonly Task _worker;

    public RecordStream(IReadOnlyList<TRecord> records, Func<TRecord, TItem> prepare, long seed, bool shuffle, int prefetch, long epoch, long index)
        : this(records, (r, _, _) => prepare(r), seed, shuffle, prefetch, epoch, index) { }

    /// <summary>A stream whose <paramref name="prepare"/> also gets the record's (epoch, index) in the stream, e.g. to draw
    /// augmentation that a resumed run reproduces (<see cref="Draw"/>).</summary>
    public RecordStream(IReadOnlyList<TRecord> records, Func<TRecord, long, long, TItem> prepare, long seed, bool shuffle, int prefetch, long epoch, long index)
    {
        _records = records; _prepare = prepare; _seed = seed; _shuffle = shuffle;
        _queue = new(prefetch);
        _worker = Task.Factory.StartNew(() => Produce(epoch, index), TaskCreationOptions.LongRunning);
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
        // Every allocation of this thread happens inside a BackgroundWork ticket; only the hand-over to the queue (which
        // allocates nothing once the queue exists) waits outside, so the training thread can take items meanwhile.
        try
        {
            while (!_cts.IsCancellationRequested)
            {
                long[] order;
                using (BackgroundWork.Enter(_cts.Token)) order = Order(_records.Count, _seed, epoch, _shuffle);
                for (long i = index; i < order.Length; i++)
                {
                    (long, long, TItem?, Exception?) entry;
                    using (BackgroundWork.Enter(_cts.Token))
                    {
                        try { entry = (epoch, i, _prepare(_records[(int)order[i]], epoch, i), null); }
                        catch (Exception e) { entry = (epoch, i, default, e); }
                    }
                    while (!_queue.TryAdd(entry, 50))
                        if (_cts.IsCancellationRequested) return;
                    if (entry.Item4 is not null) return;
                }
                epoch++; index = 0;
            }
        }
        catch (OperationCanceledException) { }
    }

    /// <summary>Next prepared record with its (epoch, index).</summary>
    public (long Epoch, long Index, TItem Item) Next()
    {
        (long, long, TItem?, Exception?) next;
        using (BackgroundWork.Quiet()) next = _queue.Take();
        var (e, i, item, err) = next;
        if (err is not null) throw new DataFormatException($"preparing record {i} of epoch {e}: {err.Message}", err);
        return (e, i, item!);
    }

    public void Dispose()
    {
        _cts.Cancel();
        try { _worker.Wait(); } catch (AggregateException) { }
        _queue.Dispose();
        _cts.Dispose();
    }
}

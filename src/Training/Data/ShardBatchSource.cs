using System.Collections.Concurrent;

namespace Llama3.Multimodal.Training;

/// <summary>
/// The micro-batch stream of a sharded source (WebDataset tar shards, Parquet row groups).
/// <para>
/// The stream is made of <c>n</c> readers (<c>data.readers</c>). In epoch <c>e</c> the shards are put in a seeded order
/// (a permutation from (seed, e)); reader <c>i</c> reads the shards at positions <c>i, i + n, …</c> of that order, one
/// after another, in blocks of <c>data.shuffle_buffer</c> samples that it holds in memory and emits in a seeded random
/// order (the bounded shuffle buffer), then goes on to its next epoch. Micro-batch <c>m</c> is made of the next
/// <c>micro</c> good samples of reader <c>m mod n</c>. A data-parallel rank owns the readers <c>rank, rank + world, …</c>:
/// it opens only their shards and builds only their micro-batches; for the others it returns a placeholder
/// (<see cref="MicroBatch.Remote"/>) that another rank trains. So the stream is the same on every world size that divides
/// <c>n</c>.
/// </para>
/// <para>
/// Samples are read on one background thread per owned reader and decoded and prepared on a pool of worker threads, in
/// order, at most <c>data.prefetch</c> ahead per reader: memory is bounded by the shuffle buffer (encoded samples) plus the
/// prefetched prepared items. The cursor (<see cref="DataCursor.Readers"/>) holds, per reader, its epoch, the position in
/// its shard list and the record where its current block started, and how many of the block it has used: a resumed
/// stream re-reads that block (skipping the records before it without decoding them) and continues bit-exactly.
/// </para>
/// </summary>
internal sealed class ShardBatchSource<TRecord, TItem> : IBatchSource
{
    /// <summary>Numbers per reader in <see cref="DataCursor.Readers"/>: epoch, shard position, block-start record, used.</summary>
    public const int StateWidth = 4;
    /// <summary>Consecutive bad samples of one reader after which the stream stops (something is wrong with all of them).</summary>
    public const int MaxConsecutiveBad = 1000;

    readonly IReadOnlyList<ShardUnit> _units;
    readonly Func<ShardSample, TRecord> _parse;
    readonly Func<TRecord, long, long, TItem> _prepare;
    readonly Func<List<TItem>, int, DataCursor, MicroBatch> _collate;
    readonly int _micro, _n, _rank, _world, _buffer, _prefetch;
    readonly long _seed;
    readonly bool _shuffle, _skipBad;
    readonly Reader?[] _readers;
    readonly BlockingCollection<Action> _jobs = new();
    readonly List<Thread> _threads = new();
    readonly CancellationTokenSource _cts = new();
    long _m, _skipped;
    string? _lastSkip;

    sealed record Result(TItem? Item, string? Bad, Exception? Error);
    sealed record Slot(TaskCompletionSource<Result> Done, long[] After);

    sealed class Reader(int id, int prefetch)
    {
        public readonly int Id = id;
        public readonly BlockingCollection<Slot> Queue = new(prefetch);
        public long[] State = new long[StateWidth];
        public int ConsecutiveBad;
    }

    public ShardBatchSource(IReadOnlyList<ShardUnit> units, Func<ShardSample, TRecord> parse, Func<TRecord, long, long, TItem> prepare,
        Func<List<TItem>, int, DataCursor, MicroBatch> collate, int micro, long seed, bool shuffle, int shuffleBuffer, int readers,
        int rank, int world, int workers, int prefetch, bool skipBad, DataCursor start, string source)
    {
        if (readers < 1) throw new ArgumentOutOfRangeException(nameof(readers));
        if (readers % world != 0)
            throw new Text.ConfigException($"data.readers = {readers} is not a multiple of the {world} data-parallel ranks (each rank owns readers rank, rank + world, …).");
        if (units.Count < readers)
            throw new DataFormatException($"{source}: {units.Count} shard(s) for {readers} readers; each reader needs at least one shard (set data.readers ≤ {units.Count}, or write more shards).");
        _units = units; _parse = parse; _prepare = prepare; _collate = collate; _micro = micro; _seed = seed; _shuffle = shuffle;
        _buffer = shuffle ? shuffleBuffer : 1; _n = readers; _rank = rank; _world = world; _prefetch = prefetch; _skipBad = skipBad;
        _readers = new Reader?[readers];
        long[]? state = start.Readers;
        if (state is not null && state.Length != readers * StateWidth)
            throw new Text.ConfigException($"the data cursor was written with data.readers = {state.Length / StateWidth}; set data.readers = {state.Length / StateWidth} to resume this run.");
        if (state is null && start.Index != 0)
            throw new Text.ConfigException($"the data cursor (epoch {start.Epoch}, index {start.Index}) was not written by a sharded source; resume with the data source the run started with.");
        _m = start.Index;
        for (int i = 0; i < workers; i++)
        {
            var t = new Thread(Work) { IsBackground = true, Name = $"shard-decode-{i}" };
            _threads.Add(t);
            t.Start();
        }
        for (int i = 0; i < readers; i++)
        {
            if (i % world != rank) continue;
            var r = new Reader(i, prefetch);
            if (state is not null) Array.Copy(state, i * StateWidth, r.State, 0, StateWidth);
            _readers[i] = r;
            long[] at = (long[])r.State.Clone();
            var t = new Thread(() => Produce(r, at)) { IsBackground = true, Name = $"shard-reader-{i}" };
            _threads.Add(t);
            t.Start();
        }
    }

    /// <inheritdoc/>
    public bool RankLocal => true;
    /// <inheritdoc/>
    public long Skipped => Interlocked.Read(ref _skipped);
    /// <inheritdoc/>
    public string? LastSkip => _lastSkip;

    /// <summary>The shard order of epoch <paramref name="epoch"/> for reader <paramref name="reader"/>: unit indices.</summary>
    internal List<int> ShardsOf(int reader, long epoch)
    {
        var order = RecordStream<int, int>.Order(_units.Count, _seed, epoch, _shuffle);
        var list = new List<int>();
        for (int p = reader; p < order.Length; p += _n) list.Add((int)order[p]);
        return list;
    }

    static long Mix(long seed, long epoch, long reader, long pos, long rec)
    {
        ulong h = (ulong)seed * 0x9E3779B97F4A7C15UL;
        foreach (long v in new[] { epoch, reader, pos, rec }) h = (h ^ (ulong)(v + 1)) * 0xBF58476D1CE4E5B9UL + 0x94D049BB133111EBUL;
        return (long)(h >> 1);
    }

    void Produce(Reader r, long[] at)
    {
        long e = at[0], p = at[1], rec = at[2], used = at[3];
        IEnumerator<ShardSample>? open = null;
        long openPos = -1, openRec = -1;
        long epochRead = 0;
        bool wholeEpoch = p == 0 && rec == 0 && used == 0;    // this reader reads epoch e from its start
        var ct = _cts.Token;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                List<int> shards;
                using (BackgroundWork.Enter(ct)) shards = ShardsOf(r.Id, e);
                long p0 = p, rec0 = rec;
                var block = new List<(ShardSample? Sample, string? Error, long Index)>();
                while (block.Count < _buffer && p < shards.Count)
                {
                    if (open is null || openPos != p || openRec != rec)
                    {
                        open?.Dispose();
                        using (BackgroundWork.Enter(ct)) open = _units[shards[(int)p]].Read(rec, ct).GetEnumerator();
                        openPos = p; openRec = rec;
                    }
                    bool more;
                    string? error = null;
                    using (BackgroundWork.Enter(ct))
                    {
                        try { more = open.MoveNext(); }
                        catch (Exception ex) when (ex is DataFormatException or IOException or InvalidDataException or FormatException)
                        {
                            more = false;
                            error = $"{_units[shards[(int)p]].Name}: {ex.Message} (the rest of the shard is skipped)";
                        }
                    }
                    if (error is not null) block.Add((null, error, ((long)shards[(int)p] << 32) | rec));
                    if (more)
                    {
                        block.Add((open.Current, null, ((long)shards[(int)p] << 32) | rec));
                        rec++; openRec = rec;
                        epochRead++;
                    }
                    else { open.Dispose(); open = null; p++; rec = 0; }
                }
                long ne = e, np = p, nrec = rec;
                if (p >= shards.Count)
                {
                    if (block.Count == 0 && epochRead == 0 && wholeEpoch)
                        throw new DataFormatException($"reader {r.Id} found no samples in its {shards.Count} shard(s) of epoch {e} (first: {_units[shards[0]].Name}).");
                    ne = e + 1; np = 0; nrec = 0;
                    if (block.Count == 0) { e = ne; p = np; rec = nrec; epochRead = 0; used = 0; wholeEpoch = true; continue; }
                }
                long[] perm;
                using (BackgroundWork.Enter(ct)) perm = RecordStream<int, int>.Order(block.Count, Mix(_seed, e, r.Id, p0, rec0), e, _shuffle && block.Count > 1);
                for (long j = used; j < block.Count; j++)
                {
                    long[] after = j + 1 < block.Count ? new[] { e, p0, rec0, j + 1 } : new[] { ne, np, nrec, 0L };
                    var slot = new Slot(new TaskCompletionSource<Result>(TaskCreationOptions.RunContinuationsAsynchronously), after);
                    while (!r.Queue.TryAdd(slot, 50, ct)) { }
                    var (sample, err, index) = block[(int)perm[j]];
                    long epoch = e;
                    _jobs.Add(() => Decode(slot, sample, err, epoch, index), ct);
                }
                used = 0;
                if (ne != e) { epochRead = 0; wholeEpoch = true; }
                e = ne; p = np; rec = nrec;
            }
        }
        catch (OperationCanceledException) { }
        catch (Exception ex)
        {
            var slot = new Slot(new TaskCompletionSource<Result>(), new[] { e, p, rec, used });
            slot.Done.SetResult(new Result(default, null, ex));
            try { r.Queue.Add(slot, ct); } catch (OperationCanceledException) { } catch (InvalidOperationException) { }
        }
        finally { open?.Dispose(); }
    }

    void Decode(Slot slot, ShardSample? sample, string? error, long epoch, long index)
    {
        if (sample is null) { slot.Done.SetResult(new Result(default, error, null)); return; }
        try
        {
            using (BackgroundWork.Enter(_cts.Token))
            {
                Result res;
                try { res = new Result(_prepare(_parse(sample), epoch, index), null, null); }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    res = new Result(default, $"{sample.Where}: {ex.Message}", null);
                }
                slot.Done.SetResult(res);
            }
        }
        catch (OperationCanceledException) { slot.Done.TrySetCanceled(); }
    }

    void Work()
    {
        try { foreach (var job in _jobs.GetConsumingEnumerable(_cts.Token)) job(); }
        catch (OperationCanceledException) { }
    }

    DataCursor Cursor()
    {
        var flat = new long[_n * StateWidth];
        long epoch = long.MaxValue;
        foreach (var r in _readers)
        {
            if (r is null) continue;
            Array.Copy(r.State, 0, flat, r.Id * StateWidth, StateWidth);
            epoch = Math.Min(epoch, r.State[0]);
        }
        return new DataCursor(epoch == long.MaxValue ? 0 : epoch, _m, 0) { Readers = flat };
    }

    public MicroBatch Next(int seqLen)
    {
        int id = (int)(_m % _n);
        _m++;
        var r = _readers[id];
        if (r is null) return new MicroBatch { Remote = true, End = Cursor() };
        var items = new List<TItem>(_micro);
        while (items.Count < _micro) items.Add(Take(id).Item);
        return _collate(items, seqLen, Cursor());
    }

    /// <summary>Whether this rank owns reader <paramref name="reader"/>.</summary>
    internal bool Owns(int reader) => _readers[reader] is not null;

    /// <summary>The reader's state (<see cref="StateWidth"/> numbers) now: where its next sample comes from.</summary>
    internal long[] StateOf(int reader) => (long[])_readers[reader]!.State.Clone();

    /// <summary>
    /// The next good item of reader <paramref name="reader"/> (owned by this rank), bad samples skipped or reported as
    /// <see cref="Next"/> does, with the reader's state just before it (resuming there yields this item first).
    /// </summary>
    internal (TItem Item, long[] Before) Take(int reader)
    {
        var r = _readers[reader] ?? throw new InvalidOperationException($"reader {reader} belongs to another rank.");
        while (true)
        {
            long[] before = r.State;
            Slot slot;
            using (BackgroundWork.Quiet())
            {
                slot = r.Queue.Take();
                slot.Done.Task.Wait();
            }
            r.State = slot.After;
            var res = slot.Done.Task.Result;
            if (res.Error is not null)
                throw res.Error as DataFormatException ?? new DataFormatException($"reading shards: {res.Error.Message}", res.Error);
            if (res.Bad is not null)
            {
                if (!_skipBad) throw new DataFormatException(res.Bad + " (data.skip_bad_records skips such samples)");
                Interlocked.Increment(ref _skipped);
                _lastSkip = res.Bad;
                if (++r.ConsecutiveBad >= MaxConsecutiveBad)
                    throw new DataFormatException($"reader {reader}: {MaxConsecutiveBad} bad samples in a row; the last: {res.Bad}");
                continue;
            }
            r.ConsecutiveBad = 0;
            return (res.Item!, (long[])before.Clone());
        }
    }

    public void Dispose()
    {
        _cts.Cancel();
        foreach (var t in _threads) t.Join();
        _jobs.Dispose();
        foreach (var r in _readers) r?.Queue.Dispose();
        _cts.Dispose();
    }
}

/// <summary>
/// Opens a stream of micro-batches over a data source of any kind (see <see cref="DataSources"/>): the loader the recipes
/// use, also usable on its own (e.g. to measure decoding throughput without a model).
/// </summary>
public static class SampleStreams
{
    /// <summary>
    /// A JSONL manifest is read whole by <paramref name="readManifest"/> (path, skip bad → records, skipped count) and
    /// streamed in a seeded per-epoch order, prepared by <c>data.workers</c> threads; tar shards and Parquet stream through <see cref="ShardRecords"/>-style
    /// <paramref name="fromShard"/> with <c>data.readers</c>, <c>data.shuffle_buffer</c>, <c>data.workers</c>,
    /// <c>data.prefetch</c> and <c>data.skip_bad_records</c> (this process being data-parallel rank <paramref name="rank"/> of
    /// <paramref name="world"/>). <paramref name="prepare"/> turns a record into an item on a background thread, given the
    /// record's (epoch, index) in the stream; <paramref name="collate"/> makes <paramref name="micro"/> items a micro-batch.
    /// <paramref name="manifestSkipped"/> hears how many manifest records were skipped as bad.
    /// </summary>
    public static IBatchSource Open<TRecord, TItem>(string source, DataSection data, int micro, long seed, bool shuffle,
        Func<string, bool, (List<TRecord> Records, int Skipped)> readManifest, Func<ShardSample, DataSection, TRecord> fromShard,
        Func<TRecord, long, long, TItem> prepare, Func<List<TItem>, int, DataCursor, MicroBatch> collate,
        DataCursor? start = null, int rank = 0, int world = 1, Action<int>? manifestSkipped = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (micro < 1) throw new ArgumentOutOfRangeException(nameof(micro), $"micro-batch size {micro} must be ≥ 1.");
        var (kind, files) = DataSources.Resolve(source);
        int workers = data.Workers > 0 ? data.Workers : Math.Min(4, Environment.ProcessorCount);
        if (kind == DataSourceKind.Jsonl)
        {
            var (list, skipped) = readManifest(source, data.SkipBadRecords);
            manifestSkipped?.Invoke(skipped);
            return new SampleBatchSource<TRecord, TItem>(list, prepare, collate, micro, seed, shuffle, data.Prefetch, start ?? DataCursor.Start, workers);
        }
        int readers = data.Readers > 0 ? data.Readers : world;
        return new ShardBatchSource<TRecord, TItem>(DataSources.Units(kind, files, readers), s => fromShard(s, data), prepare, collate, micro, seed,
            shuffle, data.ShuffleBuffer, readers, rank, world, workers, data.Prefetch, data.SkipBadRecords, start ?? DataCursor.Start, source);
    }

    /// <summary>
    /// The packed-document stream of <c>text-pretrain</c> over a source of any kind: a JSONL manifest of
    /// <c>{"text"}</c> records as <see cref="PackedTextSource"/>, tar shards or Parquet (the text by
    /// <c>data.text_column</c>) as <see cref="PackedShardSource"/>, with the same data settings as <see cref="Open"/>.
    /// </summary>
    internal static IBatchSource OpenPacked(string source, DataSection data, ITrainingTokenizer tok, int micro, long seed, bool shuffle,
        DataCursor? start = null, int rank = 0, int world = 1, Action<int>? manifestSkipped = null)
    {
        var (kind, files) = DataSources.Resolve(source);
        if (kind == DataSourceKind.Jsonl)
        {
            var docs = JsonlManifest.ReadText(source, data.SkipBadRecords, out int skipped);
            manifestSkipped?.Invoke(skipped);
            return new PackedTextSource(docs, tok, micro, seed, shuffle, data.Prefetch, start ?? DataCursor.Start);
        }
        int workers = data.Workers > 0 ? data.Workers : Math.Min(4, Environment.ProcessorCount);
        int readers = data.Readers > 0 ? data.Readers : world;
        return new PackedShardSource(DataSources.Units(kind, files, readers), data, tok, micro, seed, shuffle, readers, rank, world, workers,
            start ?? DataCursor.Start, source);
    }
}

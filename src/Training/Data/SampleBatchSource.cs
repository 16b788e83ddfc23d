namespace Llama3.Multimodal.Training;

/// <summary>Groups <c>micro</c> prepared records per micro-batch and collates them.</summary>
internal sealed class SampleBatchSource<TRecord, TItem> : IBatchSource
{
    readonly RecordStream<TRecord, TItem> _stream;
    readonly int _micro, _count;
    readonly Func<List<TItem>, int, DataCursor, MicroBatch> _collate;

    public SampleBatchSource(IReadOnlyList<TRecord> records, Func<TRecord, TItem> prepare, Func<List<TItem>, int, DataCursor, MicroBatch> collate,
        int micro, long seed, bool shuffle, int prefetch, DataCursor start)
        : this(records, (r, _, _) => prepare(r), collate, micro, seed, shuffle, prefetch, start) { }

    /// <summary>As above, with <paramref name="prepare"/> also getting each record's (epoch, index) in the stream.</summary>
    public SampleBatchSource(IReadOnlyList<TRecord> records, Func<TRecord, long, long, TItem> prepare, Func<List<TItem>, int, DataCursor, MicroBatch> collate,
        int micro, long seed, bool shuffle, int prefetch, DataCursor start, int workers = 1)
    {
        _stream = new(records, prepare, seed, shuffle, prefetch, start.Epoch, start.Index, workers);
        _micro = micro; _collate = collate; _count = records.Count;
    }

    public MicroBatch Next(int seqLen)
    {
        var items = new List<TItem>(_micro);
        long e = 0, i = 0;
        for (int k = 0; k < _micro; k++) { var (ep, ix, item) = _stream.Next(); items.Add(item); e = ep; i = ix; }
        var end = i + 1 >= _count ? new DataCursor(e + 1, 0, 0) : new DataCursor(e, i + 1, 0);
        return _collate(items, seqLen, end);
    }

    public void Dispose() => _stream.Dispose();
}

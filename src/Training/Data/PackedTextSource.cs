using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>
/// Packs tokenised documents (<c>bos text eos</c>) back to back into rows of exactly <c>seqLen</c> tokens; a document
/// that does not fit continues in the next row. Each row gets document ids (0, 1, … within the row) for the document
/// mask; the label of position i is token i+1 when both belong to the same document, else ignored (−100), so the packed
/// loss is the sum of the per-document losses.
/// </summary>
internal sealed class PackedTextSource : IBatchSource
{
    readonly RecordStream<TextDocument, int[]> _stream;
    readonly int _micro, _count;
    int[]? _doc;
    long _epoch, _index, _offset;

    public PackedTextSource(IReadOnlyList<TextDocument> docs, ITrainingTokenizer tok, int micro, long seed, bool shuffle, int prefetch, DataCursor start)
    {
        _count = docs.Count; _micro = micro;
        _stream = new(docs, d => Tokenize(tok, d), seed, shuffle, prefetch, start.Epoch, start.Index);
        _offset = start.Offset;
        Load(keepOffset: true);
    }

    void Load(bool keepOffset)
    {
        var (e, i, item) = _stream.Next();
        _doc = item; _epoch = e; _index = i;
        if (!keepOffset) _offset = 0;
    }

    DataCursor Cursor() => new(_epoch, _index, _offset);

    /// <summary>Packs one row; returns (tokens, document ids).</summary>
    internal (long[] Ids, long[] Docs) Row(int len)
    {
        var ids = new long[len]; var docs = new long[len];
        int filled = 0; long docId = 0;
        while (filled < len)
        {
            if (_offset >= _doc!.Length) { Load(keepOffset: false); docId += filled > 0 ? 1 : 0; }
            int take = (int)Math.Min(len - filled, _doc.Length - _offset);
            for (int k = 0; k < take; k++) { ids[filled + k] = _doc[_offset + k]; docs[filled + k] = docId; }
            filled += take; _offset += take;
        }
        return (ids, docs);
    }

    public MicroBatch Next(int seqLen)
    {
        var rows = Enumerable.Range(0, _micro).Select(_ => Row(seqLen)).ToList();
        // The cursor names the document being read and how far; a fully read document moves to the next record.
        var end = _offset >= _doc!.Length
            ? (_index + 1 >= _count ? new DataCursor(_epoch + 1, 0, 0) : new DataCursor(_epoch, _index + 1, 0))
            : Cursor();
        return Batch(rows, seqLen, end);
    }

    /// <summary>Tokenises a document as it is packed: <c>bos text eos</c>.</summary>
    internal static int[] Tokenize(ITrainingTokenizer tok, TextDocument d)
    {
        var ids = new List<int>(d.Text.Length + 2) { tok.BosId };
        ids.AddRange(tok.Encode(d.Text));
        ids.Add(tok.EosId);
        return ids.ToArray();
    }

    /// <summary>Packs one row from <paramref name="doc"/> at <paramref name="offset"/>, then from <paramref name="next"/> documents (the loop of <see cref="Row(int)"/> over any supply).</summary>
    internal static (long[] Ids, long[] Docs) Row(int len, ref int[]? doc, ref long offset, Func<int[]> next)
    {
        var ids = new long[len]; var docs = new long[len];
        int filled = 0; long docId = 0;
        while (filled < len)
        {
            if (doc is null) doc = next();
            else if (offset >= doc.Length) { doc = next(); offset = 0; docId += filled > 0 ? 1 : 0; }
            int take = (int)Math.Min(len - filled, doc.Length - offset);
            for (int k = 0; k < take; k++) { ids[filled + k] = doc[offset + k]; docs[filled + k] = docId; }
            filled += take; offset += take;
        }
        return (ids, docs);
    }

    /// <summary>A micro-batch of packed rows: labels are the next token within the same document, else ignored.</summary>
    internal static MicroBatch Batch(IReadOnlyList<(long[] Ids, long[] Docs)> rows, int seqLen, DataCursor end)
    {
        int micro = rows.Count;
        var ids = new long[micro * seqLen]; var docs = new long[micro * seqLen]; var labels = new long[micro * seqLen];
        long elements = 0;
        for (int r = 0; r < micro; r++)
        {
            var (ri, rd) = rows[r];
            Array.Copy(ri, 0, ids, r * seqLen, seqLen);
            Array.Copy(rd, 0, docs, r * seqLen, seqLen);
            for (int t = 0; t < seqLen; t++)
            {
                bool ok = t + 1 < seqLen && rd[t + 1] == rd[t];
                labels[r * seqLen + t] = ok ? ri[t + 1] : -100;
                if (ok) elements++;
            }
        }
        var shape = new long[] { micro, seqLen };
        var b = new MicroBatch { Tokens = (long)micro * seqLen, Samples = micro, LossElements = elements, End = end };
        b.Tensors["input_ids"] = torch.tensor(ids, shape);
        b.Tensors["labels"] = torch.tensor(labels, shape);
        b.Tensors["document_ids"] = torch.tensor(docs, shape);
        return b;
    }

    public void Dispose() => _stream.Dispose();
}

/// <summary>
/// <see cref="PackedTextSource"/>'s packing over a sharded source (tar shards, Parquet): packed micro-batch <c>m</c> comes
/// from reader <c>m mod n</c> of a <see cref="ShardBatchSource{TRecord, TItem}"/>, whose documents that reader alone packs
/// back to back, so that each data-parallel rank packs only the documents of its own readers. The cursor holds, per
/// reader, the shard reader's state before the document being packed and how many of its tokens are used
/// (<see cref="StateWidth"/> numbers): a resumed stream re-reads that document and continues bit-exactly.
/// </summary>
internal sealed class PackedShardSource : IBatchSource
{
    /// <summary>Numbers per reader in <see cref="DataCursor.Readers"/>: the shard reader's four, then the token offset.</summary>
    public const int StateWidth = ShardBatchSource<TextDocument, int[]>.StateWidth + 1;

    readonly ShardBatchSource<TextDocument, int[]> _inner;
    readonly int _micro, _n;
    readonly int[]?[] _doc;
    readonly long[] _offset;
    readonly long[]?[] _before;
    long _m;

    public PackedShardSource(IReadOnlyList<ShardUnit> units, DataSection data, ITrainingTokenizer tok, int micro, long seed, bool shuffle,
        int readers, int rank, int world, int workers, DataCursor start, string source)
    {
        long[]? state = start.Readers;
        if (state is not null && state.Length != readers * StateWidth)
            throw new Text.ConfigException($"the data cursor was written with data.readers = {state.Length / StateWidth} (or by another recipe); set data.readers = {state.Length / StateWidth} to resume this run.");
        if (state is null && start.Index != 0)
            throw new Text.ConfigException($"the data cursor (epoch {start.Epoch}, index {start.Index}) was not written by a sharded source; resume with the data source the run started with.");
        const int w = ShardBatchSource<TextDocument, int[]>.StateWidth;
        var inner = state is null ? DataCursor.Start
            : new DataCursor(start.Epoch, start.Index, 0) { Readers = Enumerable.Range(0, readers).SelectMany(i => state.Skip(i * StateWidth).Take(w)).ToArray() };
        _inner = new ShardBatchSource<TextDocument, int[]>(units, s => ShardTextRecords.Document(s, data), (d, _, _) => PackedTextSource.Tokenize(tok, d),
            (_, _, _) => throw new InvalidOperationException("packed documents are taken one by one."), 1, seed, shuffle, data.ShuffleBuffer,
            readers, rank, world, workers, data.Prefetch, data.SkipBadRecords, inner, source);
        _micro = micro; _n = readers; _m = start.Index;
        _doc = new int[]?[readers];
        _before = new long[]?[readers];
        _offset = new long[readers];
        if (state is not null) for (int i = 0; i < readers; i++) _offset[i] = state[i * StateWidth + w];
    }

    /// <inheritdoc/>
    public bool RankLocal => true;
    /// <inheritdoc/>
    public long Skipped => _inner.Skipped;
    /// <inheritdoc/>
    public string? LastSkip => _inner.LastSkip;

    int[] NextDoc(int reader)
    {
        var (doc, before) = _inner.Take(reader);
        _before[reader] = before;
        return doc;
    }

    DataCursor Cursor()
    {
        const int w = ShardBatchSource<TextDocument, int[]>.StateWidth;
        var flat = new long[_n * StateWidth];
        long epoch = long.MaxValue;
        for (int i = 0; i < _n; i++)
        {
            if (!_inner.Owns(i)) continue;
            // A document used up moves the cursor past it; one in progress is re-read and its used tokens skipped.
            var (st, off) = _doc[i] is { } d && _offset[i] < d.Length ? (_before[i]!, _offset[i])
                : _doc[i] is null ? (_inner.StateOf(i), _offset[i]) : (_inner.StateOf(i), 0L);
            Array.Copy(st, 0, flat, i * StateWidth, w);
            flat[i * StateWidth + w] = off;
            epoch = Math.Min(epoch, st[0]);
        }
        return new DataCursor(epoch == long.MaxValue ? 0 : epoch, _m, 0) { Readers = flat };
    }

    public MicroBatch Next(int seqLen)
    {
        int id = (int)(_m % _n);
        _m++;
        if (!_inner.Owns(id)) return new MicroBatch { Remote = true, End = Cursor() };
        var rows = new List<(long[], long[])>(_micro);
        for (int r = 0; r < _micro; r++)
            rows.Add(PackedTextSource.Row(seqLen, ref _doc[id], ref _offset[id], () => NextDoc(id)));
        return PackedTextSource.Batch(rows, seqLen, Cursor());
    }

    public void Dispose() => _inner.Dispose();
}

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
        _stream = new(docs, d =>
        {
            var ids = new List<int>(d.Text.Length + 2) { tok.BosId };
            ids.AddRange(tok.Encode(d.Text));
            ids.Add(tok.EosId);
            return ids.ToArray();
        }, seed, shuffle, prefetch, start.Epoch, start.Index);
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
        var ids = new long[_micro * seqLen]; var docs = new long[_micro * seqLen]; var labels = new long[_micro * seqLen];
        long elements = 0;
        for (int r = 0; r < _micro; r++)
        {
            var (ri, rd) = Row(seqLen);
            Array.Copy(ri, 0, ids, r * seqLen, seqLen);
            Array.Copy(rd, 0, docs, r * seqLen, seqLen);
            for (int t = 0; t < seqLen; t++)
            {
                bool ok = t + 1 < seqLen && rd[t + 1] == rd[t];
                labels[r * seqLen + t] = ok ? ri[t + 1] : -100;
                if (ok) elements++;
            }
        }
        // The cursor names the document being read and how far; a fully read document moves to the next record.
        var end = _offset >= _doc!.Length
            ? (_index + 1 >= _count ? new DataCursor(_epoch + 1, 0, 0) : new DataCursor(_epoch, _index + 1, 0))
            : Cursor();
        var shape = new long[] { _micro, seqLen };
        var b = new MicroBatch { Tokens = (long)_micro * seqLen, Samples = _micro, LossElements = elements, End = end };
        b.Tensors["input_ids"] = torch.tensor(ids, shape);
        b.Tensors["labels"] = torch.tensor(labels, shape);
        b.Tensors["document_ids"] = torch.tensor(docs, shape);
        return b;
    }

    public void Dispose() => _stream.Dispose();
}

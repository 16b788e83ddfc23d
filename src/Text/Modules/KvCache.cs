using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>
/// Preallocated key/value cache: one [B, n_kv, capacity, head_dim] pair per decoder block, written in place as tokens
/// arrive (no per-token allocation). Cross-attention blocks keep their media K/V in their slot via <see cref="SetStatic"/>.
/// </summary>
public sealed class KvCache : IDisposable
{
    readonly Tensor?[] _k, _v;
    readonly Tensor?[] _staticK, _staticV;
    readonly long _batch, _kvHeads, _headDim;
    readonly ScalarType _dtype;

    /// <summary>Tokens held so far (the position of the next write).</summary>
    public int Length { get; private set; }
    /// <summary>Maximum tokens the cache can hold.</summary>
    public int Capacity { get; }
    /// <summary>Batch size the cache was made for.</summary>
    public long Batch => _batch;

    /// <summary>Allocates the cache for <paramref name="layers"/> blocks.</summary>
    public KvCache(int layers, long batch, long kvHeads, long headDim, int capacity, ScalarType dtype, Device device)
    {
        _k = new Tensor?[layers]; _v = new Tensor?[layers];
        _staticK = new Tensor?[layers]; _staticV = new Tensor?[layers];
        _batch = batch; _kvHeads = kvHeads; _headDim = headDim; _dtype = dtype;
        Capacity = capacity;
    }

    /// <summary>Creates a cache sized for <paramref name="config"/>.</summary>
    public static KvCache For(LlamaConfig config, int layers, long batch, int capacity, ScalarType dtype, Device device) =>
        new(layers, batch, config.NumKvHeads, config.HeadDim, capacity, dtype, device);

    /// <summary>
    /// Writes <paramref name="k"/>, <paramref name="v"/> ([B', n_kv, T, D]) of block <paramref name="layer"/> at
    /// positions [Length, Length+T) and returns views of everything cached so far, [B', n_kv, Length+T, D]. B' may be
    /// less than <see cref="Batch"/>: then only the first B' rows are written and returned (a continuous batch runs its
    /// active rows, packed at the front).
    /// </summary>
    public (Tensor K, Tensor V) Append(int layer, Tensor k, Tensor v)
    {
        long t = k.shape[2], rows = k.shape[0];
        if (Length + t > Capacity)
            throw new InvalidOperationException($"KV cache full: {Length} + {t} tokens exceed its capacity of {Capacity}.");
        if (rows > _batch) throw new InvalidOperationException($"{rows} rows for a KV cache of batch {_batch}.");
        Allocate(layer, k.device);
        if (rows == _batch)
        {
            using (torch.no_grad())
            {
                using var ks = _k[layer]!.narrow(2, Length, t);
                using var vs = _v[layer]!.narrow(2, Length, t);
                ks.copy_(k);
                vs.copy_(v);
            }
            return (_k[layer]!.narrow(2, 0, Length + t), _v[layer]!.narrow(2, 0, Length + t));
        }
        using (torch.no_grad())
        {
            using var ks = _k[layer]!.narrow(0, 0, rows).narrow(2, Length, t);
            using var vs = _v[layer]!.narrow(0, 0, rows).narrow(2, Length, t);
            ks.copy_(k);
            vs.copy_(v);
        }
        return (_k[layer]!.narrow(0, 0, rows).narrow(2, 0, Length + t), _v[layer]!.narrow(0, 0, rows).narrow(2, 0, Length + t));
    }

    /// <summary>The whole K and V storage of block <paramref name="layer"/>, [B, n_kv, capacity, head_dim], allocated on <paramref name="device"/> if new.</summary>
    internal (Tensor K, Tensor V) Storage(int layer, Device device)
    {
        Allocate(layer, device);
        return (_k[layer]!, _v[layer]!);
    }

    /// <summary>The dtype of the cached keys and values.</summary>
    internal ScalarType DType => _dtype;

    void Allocate(int layer, Device device)
    {
        if (_k[layer] is not null) return;
        // Allocated where the layer lives (a model may be split over several devices).
        _k[layer] = torch.zeros(new[] { _batch, _kvHeads, Capacity, _headDim }, dtype: _dtype, device: device).DetachFromDisposeScope();
        _v[layer] = torch.zeros(new[] { _batch, _kvHeads, Capacity, _headDim }, dtype: _dtype, device: device).DetachFromDisposeScope();
    }

    /// <summary>
    /// Copies <paramref name="count"/> cached tokens of row <paramref name="sourceRow"/> of <paramref name="source"/>,
    /// starting at column <paramref name="sourceColumn"/>, into row <paramref name="row"/> of this cache at column
    /// <paramref name="column"/>, in every block that <paramref name="source"/> holds (a continuous batch moves a prompt
    /// prefilled on its own into a slot of the shared cache this way; the two caches may be the same one).
    /// </summary>
    public void CopyRow(KvCache source, int sourceRow, int sourceColumn, int row, int column, int count)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source._k.Length != _k.Length) throw new ArgumentException($"a cache of {source._k.Length} blocks copied into one of {_k.Length}.");
        if (sourceRow < 0 || sourceRow >= source._batch || row < 0 || row >= _batch)
            throw new ArgumentException($"row {sourceRow} → {row} is outside the batch ({source._batch} → {_batch}).");
        if (count < 0 || sourceColumn < 0 || column < 0 || sourceColumn + count > source.Capacity || column + count > Capacity)
            throw new ArgumentException($"{count} tokens from column {sourceColumn} to column {column} do not fit (capacities {source.Capacity} → {Capacity}).");
        if (count == 0) return;
        using var scope = NewDisposeScope();
        using var _ = torch.no_grad();
        for (int layer = 0; layer < _k.Length; layer++)
        {
            if (source._k[layer] is null) continue;
            Allocate(layer, source._k[layer]!.device);
            foreach (var (src, dst) in new[] { (source._k[layer]!, _k[layer]!), (source._v[layer]!, _v[layer]!) })
            {
                var from = src.narrow(0, sourceRow, 1).narrow(2, sourceColumn, count);
                if (ReferenceEquals(src, dst)) from = from.clone();
                dst.narrow(0, row, 1).narrow(2, column, count).copy_(from);
            }
        }
    }

    /// <summary>
    /// Moves every row's cached tokens [0, Length) by <paramref name="offset"/> columns (right when positive; when
    /// negative the first −offset columns are dropped) and moves <see cref="Length"/> with them. Columns left behind keep
    /// stale values: the caller's key-validity mask must exclude them.
    /// </summary>
    public void Shift(int offset)
    {
        if (Length + offset < 0 || Length + offset > Capacity)
            throw new ArgumentException($"shifting {Length} cached tokens by {offset} leaves the cache's capacity of {Capacity}.");
        int keep = offset >= 0 ? Length : Length + offset;
        if (offset != 0 && keep > 0)
        {
            using var scope = NewDisposeScope();
            using var _ = torch.no_grad();
            foreach (var t in _k.Concat(_v))
            {
                if (t is null) continue;
                var from = t.narrow(2, offset >= 0 ? 0 : -offset, keep).clone();
                t.narrow(2, offset >= 0 ? offset : 0, keep).copy_(from);
            }
        }
        Length += offset;
    }

    /// <summary>Advances the write position after every block has appended <paramref name="tokens"/> tokens.</summary>
    public void Advance(int tokens) => Length += tokens;

    /// <summary>Stores per-request K/V that do not grow (media keys for cross-attention).</summary>
    public void SetStatic(int layer, Tensor k, Tensor v)
    {
        _staticK[layer]?.Dispose(); _staticV[layer]?.Dispose();
        _staticK[layer] = k.DetachFromDisposeScope(); _staticV[layer] = v.DetachFromDisposeScope();
    }

    /// <summary>The K/V stored by <see cref="SetStatic"/>, or nulls.</summary>
    public (Tensor? K, Tensor? V) GetStatic(int layer) => (_staticK[layer], _staticV[layer]);

    /// <summary>
    /// Beam search: row <c>r</c> of every cached tensor (growing and static) becomes row <paramref name="rows"/>[r] of what
    /// it was, in place (the allocation is kept).
    /// </summary>
    public void Reorder(IReadOnlyList<long> rows)
    {
        if (rows.Count != _batch) throw new ArgumentException($"{rows.Count} source rows for a cache of batch {_batch}.");
        if (rows.Any(r => r < 0 || r >= _batch)) throw new ArgumentException($"a source row is outside the cache's batch of {_batch}.");
        using var scope = NewDisposeScope();
        using var _ = torch.no_grad();
        var idx = torch.tensor(rows.ToArray());
        foreach (var t in _k.Concat(_v).Concat(_staticK).Concat(_staticV))
            if (t is not null)
                t.copy_(t.index_select(0, idx.to(t.device)));
    }

    /// <summary>Forgets all tokens (keeps the allocation and static K/V).</summary>
    public void Reset() => Length = 0;

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var t in _k.Concat(_v).Concat(_staticK).Concat(_staticV)) t?.Dispose();
        Array.Clear(_k); Array.Clear(_v); Array.Clear(_staticK); Array.Clear(_staticV);
    }
}

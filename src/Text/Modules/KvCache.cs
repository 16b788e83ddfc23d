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
    /// Writes <paramref name="k"/>, <paramref name="v"/> ([B, n_kv, T, D]) of block <paramref name="layer"/> at
    /// positions [Length, Length+T) and returns views of everything cached so far, [B, n_kv, Length+T, D].
    /// </summary>
    public (Tensor K, Tensor V) Append(int layer, Tensor k, Tensor v)
    {
        long t = k.shape[2];
        if (Length + t > Capacity)
            throw new InvalidOperationException($"KV cache full: {Length} + {t} tokens exceed its capacity of {Capacity}.");
        if (_k[layer] is null)
        {
            // Allocated where the layer lives (a model may be split over several devices).
            _k[layer] = torch.zeros(new[] { _batch, _kvHeads, Capacity, _headDim }, dtype: _dtype, device: k.device).DetachFromDisposeScope();
            _v[layer] = torch.zeros(new[] { _batch, _kvHeads, Capacity, _headDim }, dtype: _dtype, device: k.device).DetachFromDisposeScope();
        }
        using (torch.no_grad())
        {
            using var ks = _k[layer]!.narrow(2, Length, t);
            using var vs = _v[layer]!.narrow(2, Length, t);
            ks.copy_(k);
            vs.copy_(v);
        }
        return (_k[layer]!.narrow(2, 0, Length + t), _v[layer]!.narrow(2, 0, Length + t));
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

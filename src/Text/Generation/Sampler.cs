using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>Chooses the next token from logits: greedy, or temperature with top-k / top-p filtering, seeded.</summary>
public sealed class Sampler : IDisposable
{
    readonly GenerationOptions _o;
    readonly Generator _gen;

    /// <summary>Creates a sampler; the generator lives on the CPU, where sampling runs.</summary>
    public Sampler(GenerationOptions options)
    {
        _o = options.Validate();
        _gen = new Generator((ulong)options.Seed, CPU);
    }

    /// <summary>logits [B, V] (f32, any device) → ids [B] (CPU int64).</summary>
    public long[] Next(Tensor logits)
    {
        using var scope = NewDisposeScope();
        var l = logits.to(CPU).to_type(ScalarType.Float32);
        if (_o.Temperature == 0) return l.argmax(-1).data<long>().ToArray();
        using (var temperature = _o.Temperature.ToScalar()) l = l.div(temperature);
        if (_o.TopK > 0 && _o.TopK < l.shape[1])
        {
            var kth = l.topk(_o.TopK, -1).values.narrow(1, _o.TopK - 1, 1);
            l = l.masked_fill(l.lt(kth), Scalars.NegativeInfinity);
        }
        if (_o.TopP < 1)
        {
            var (sorted, idx) = l.sort(-1, descending: true);
            var cum = sorted.softmax(-1).cumsum(-1);
            // Drop a token when the mass before it already reaches p (the first token always stays).
            using var topP = _o.TopP.ToScalar();
            var drop = (cum - sorted.softmax(-1)).ge(topP);
            var dropOrig = torch.zeros_like(drop).scatter(-1, idx, drop);
            l = l.masked_fill(dropOrig, Scalars.NegativeInfinity);
        }
        var probs = l.softmax(-1);
        return torch.multinomial(probs, 1, generator: _gen).view(-1).data<long>().ToArray();
    }

    /// <inheritdoc/>
    public void Dispose() => _gen.Dispose();
}

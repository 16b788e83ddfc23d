using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>
/// Builds boolean self-attention masks (true = may attend): causal, with left padding of batched prompts, and with
/// document boundaries of packed sequences. Every row keeps at least its own position, so no row is empty.
/// </summary>
public static class AttentionMask
{
    /// <summary>
    /// Mask for <paramref name="t"/> new queries after <paramref name="offset"/> cached tokens, in the grouped-query
    /// folded layout [B, 1, n_rep·T, offset+T]. <paramref name="keyValid"/> [B, offset+T] marks real (non-pad) tokens;
    /// <paramref name="documentIds"/> [B, T] (only without a cache) forbids attention across documents.
    /// Returns null when no mask is needed.
    /// </summary>
    public static Tensor? Build(long batch, long t, long offset, long rep, Tensor? keyValid, Tensor? documentIds, Device device)
    {
        if (t == 1 && keyValid is null && documentIds is null) return null;
        using var scope = NewDisposeScope();
        long s = offset + t;
        var qi = Scalars.Arange(offset, s, device).view(t, 1);
        var kj = Scalars.Arange(0, s, device).view(1, s);
        var allowed = kj.le(qi).unsqueeze(0).expand(batch, t, s);                 // [B, T, S]
        if (keyValid is not null) allowed = allowed.logical_and(keyValid.to(device).to_type(ScalarType.Bool).unsqueeze(1));
        if (documentIds is not null)
        {
            if (offset != 0) throw new ArgumentException("document masks apply to a plain forward without a cache.");
            var d = documentIds.to(device);
            allowed = allowed.logical_and(d.unsqueeze(2).eq(d.unsqueeze(1)));
        }
        allowed = allowed.logical_or(kj.eq(qi).unsqueeze(0));
        var m = allowed.unsqueeze(1);                                             // [B, 1, T, S]
        if (rep > 1) m = m.repeat(1, 1, rep, 1);                                  // [B, 1, rep·T, S]
        return m.contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>Positions that restart at 0 at each new document id along each row of <paramref name="documentIds"/> [B, T].</summary>
    public static Tensor DocumentPositions(Tensor documentIds)
    {
        long b = documentIds.shape[0], t = documentIds.shape[1];
        long[] ids = documentIds.to(CPU).to_type(ScalarType.Int64).data<long>().ToArray();
        var pos = new long[ids.Length];
        for (long r = 0; r < b; r++)
        {
            long p = 0;
            for (long i = 0; i < t; i++)
            {
                long k = r * t + i;
                if (i > 0 && ids[k] != ids[k - 1]) p = 0;
                pos[k] = p++;
            }
        }
        return torch.tensor(pos, new[] { b, t }).to(documentIds.device);
    }
}

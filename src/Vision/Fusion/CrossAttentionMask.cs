using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision;

/// <summary>
/// The cross-attention mask of Llama 3.2 Vision (HF <c>get_cross_attention_token_mask</c> = Meta <c>create_vision_mask</c>):
/// image k is visible to rows [p_k, p_{k+1}), the last image to the end of the sequence, and an image immediately followed
/// by another image token shares the range of the one after it. Only the image's real tiles are visible.
/// </summary>
public static class CrossAttentionMask
{
    /// <summary>Marks an open range end (through the end of the sequence, generated tokens included).</summary>
    public const int Open = int.MaxValue;

    /// <summary>The visible row range [Start, End) of each image token in <paramref name="ids"/>, in order.</summary>
    public static IReadOnlyList<(int Start, int End)> ImageRanges(IReadOnlyList<int> ids, int imageTokenId)
    {
        var locs = new List<int>();
        for (int i = 0; i < ids.Count; i++) if (ids[i] == imageTokenId) locs.Add(i);
        var ranges = new (int Start, int End)[locs.Count];
        for (int k = 0; k < locs.Count; k++) ranges[k] = (locs[k], k + 1 < locs.Count ? locs[k + 1] : Open);
        int lastEnd = Open;
        for (int k = ranges.Length - 1; k >= 0; k--)
        {
            if (ranges[k].Start == ranges[k].End - 1) ranges[k].End = lastEnd;
            lastEnd = ranges[k].End;
        }
        return ranges;
    }

    /// <summary>
    /// Dense mask for query rows [<paramref name="start"/>, start + <paramref name="length"/>) of each batch row:
    /// [B, T, images, tiles] bool, true where the row sees that tile.
    /// </summary>
    public static bool[,,,] Dense(IReadOnlyList<IReadOnlyList<(int Start, int End)>> ranges, IReadOnlyList<IReadOnlyList<int>> numTiles,
        int maxImages, int maxTiles, int start, int length)
    {
        int b = ranges.Count;
        var dense = new bool[b, length, maxImages, maxTiles];
        for (int r = 0; r < b; r++)
        {
            if (ranges[r].Count != numTiles[r].Count)
                throw new ArgumentException($"prompt {r} has {ranges[r].Count} <|image|> tokens but {numTiles[r].Count} images.");
            for (int i = 0; i < ranges[r].Count; i++)
            {
                var (s, e) = ranges[r][i];
                for (int t = 0; t < length; t++)
                {
                    long q = (long)start + t;
                    if (q < s || q >= e) continue;
                    for (int k = 0; k < numTiles[r][i] && k < maxTiles; k++) dense[r, t, i, k] = true;
                }
            }
        }
        return dense;
    }

    /// <summary>
    /// Builds the tensors the cross-attention blocks use for query rows [<paramref name="start"/>, start + T): the folded
    /// bool mask [B, 1, n_rep·T, S] and the row mask [B, T, 1] (in <paramref name="dtype"/>).
    /// </summary>
    public static (Tensor Mask, Tensor RowMask) Build(IReadOnlyList<IReadOnlyList<(int Start, int End)>> ranges,
        IReadOnlyList<IReadOnlyList<int>> numTiles, int maxImages, int maxTiles, int tokensPerTile, int start, int length,
        int nRep, ScalarType dtype, Device device)
    {
        int b = ranges.Count;
        var dense = Dense(ranges, numTiles, maxImages, maxTiles, start, length);
        var flat = new bool[b * length * maxImages * maxTiles];
        Buffer.BlockCopy(dense, 0, flat, 0, flat.Length);
        using var scope = NewDisposeScope();
        var d = torch.tensor(flat, new long[] { b, length, maxImages * maxTiles }).to(device);
        var rowHas = d.any(-1, keepdim: true);                                                     // [B, T, 1]
        long s = (long)maxImages * maxTiles * tokensPerTile;
        var allowed = d.unsqueeze(-1).expand(b, length, maxImages * maxTiles, tokensPerTile).reshape(b, length, s);
        allowed = allowed.logical_or(rowHas.logical_not());
        var mask = allowed.unsqueeze(1).repeat(1, 1, nRep, 1);                                     // [B, 1, n_rep·T, S]
        var row = rowHas.to(dtype);
        return (mask.MoveToOuterDisposeScope(), row.MoveToOuterDisposeScope());
    }
}

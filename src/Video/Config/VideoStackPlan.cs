namespace Llama3.Multimodal.Video;

/// <summary>
/// Where video cross-attention layers sit in the decoder stack. The base (image-text) stack keeps its own numbering
/// (so its checkpoints load unchanged); the video model's stack is the base stack with one video block inserted right
/// before each chosen image cross-attention block.
/// </summary>
public sealed class VideoStackPlan
{
    /// <summary>For each block of the video model's stack: the base-stack index it runs, or −(j + 1) for video layer j.</summary>
    public IReadOnlyList<int> Blocks { get; }
    /// <summary>Stack index (in the video model) of each video layer j.</summary>
    public IReadOnlyList<int> VideoBlockIndices { get; }

    /// <summary>Number of blocks in the video model's stack.</summary>
    public int Count => Blocks.Count;

    /// <summary>
    /// Plans a stack of <paramref name="baseBlocks"/> base blocks whose image cross-attention blocks sit at
    /// <paramref name="imageCrossAttentionLayers"/> (base indices), with video layers before the image layers of
    /// 1-based <paramref name="ordinals"/>. E.g. Llama 3.2 11B: 40 blocks, image at [3, 8, …, 38], ordinals [4, 8] →
    /// video blocks at 18 and 39 of 42.
    /// </summary>
    public VideoStackPlan(int baseBlocks, IReadOnlyList<int> imageCrossAttentionLayers, IReadOnlyList<int> ordinals)
    {
        var image = imageCrossAttentionLayers.OrderBy(i => i).ToArray();
        var before = new HashSet<int>(ordinals.Select(o => image[o - 1]));
        var blocks = new List<int>();
        var video = new List<int>();
        for (int i = 0; i < baseBlocks; i++)
        {
            if (before.Contains(i)) { video.Add(blocks.Count); blocks.Add(-video.Count); }
            blocks.Add(i);
        }
        Blocks = blocks;
        VideoBlockIndices = video;
    }

    /// <summary>The video layer at stack index <paramref name="i"/>, or null for a base block.</summary>
    public int? VideoLayerAt(int i) => Blocks[i] < 0 ? -Blocks[i] - 1 : null;
}

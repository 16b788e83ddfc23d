namespace Llama3.Multimodal.Training;

/// <summary>A position in a training stream: epoch, index into that epoch's (shuffled) order, token offset inside the record.</summary>
/// <param name="Epoch">Epoch number (0-based).</param>
/// <param name="Index">Index into the epoch's record order.</param>
/// <param name="Offset">Tokens of that record already consumed (packing splits documents).</param>
public sealed record DataCursor(long Epoch, long Index, long Offset)
{
    /// <summary>
    /// Sharded sources (tar shards, Parquet): per reader its epoch, position in its shard list, the record where its
    /// current shuffle block started and how many of the block it has used (four numbers per reader); then
    /// <see cref="Index"/> counts micro-batches and <see cref="Epoch"/> is the lowest reader epoch. Null for manifests.
    /// </summary>
    public long[]? Readers { get; init; }

    /// <summary>The start of the stream.</summary>
    public static DataCursor Start { get; } = new(0, 0, 0);
}

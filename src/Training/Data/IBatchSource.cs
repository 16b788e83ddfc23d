namespace Llama3.Multimodal.Training;

/// <summary>An endless, resumable stream of micro-batches.</summary>
public interface IBatchSource : IDisposable
{
    /// <summary>The next micro-batch at sequence length <paramref name="seqLen"/>.</summary>
    MicroBatch Next(int seqLen);

    /// <summary>
    /// True when each data-parallel rank reads only its own part of the stream (sharded sources): micro-batches of other
    /// ranks come back as <see cref="MicroBatch.Remote"/> placeholders and the trainer sums counts and cursors over ranks.
    /// </summary>
    bool RankLocal => false;
    /// <summary>Bad samples skipped so far (<c>data.skip_bad_records</c>) while streaming.</summary>
    long Skipped => 0;
    /// <summary>The last skipped sample and why (naming its shard and key), or null.</summary>
    string? LastSkip => null;
}

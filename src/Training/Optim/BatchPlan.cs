namespace Llama3.Multimodal.Training;

/// <summary>
/// Global batch and sequence length in force after a number of training tokens (the Llama 3 ramp: 4M tokens at 4096 →
/// after 252M tokens 8M at 8192 → after 2.87T tokens 16M), and the number of micro-batches that accumulate to it.
/// </summary>
public static class BatchPlan
{
    /// <summary>(global batch, sequence length) after <paramref name="tokensSeen"/> tokens.</summary>
    public static (long Global, int SeqLen) At(TrainConfig c, long tokensSeen)
    {
        long global = c.Batch.Global; int len = c.Data.SeqLen;
        foreach (var s in c.Batch.Ramp.OrderBy(s => s.AfterTokens))
            if (tokensSeen >= s.AfterTokens) { global = s.Global; len = s.SeqLen; }
        return (global, len);
    }

    /// <summary>Micro-batches per optimizer step: the global batch divided by one micro-batch (rounded, at least 1).</summary>
    public static int Accumulation(TrainConfig c, long global, int seqLen)
    {
        double per = c.Batch.Unit == "tokens" ? (double)c.Batch.Micro * seqLen : c.Batch.Micro;
        return (int)Math.Max(1, Math.Round(global / per));
    }
}

namespace Llama3.Multimodal.Training;

/// <summary>An endless, resumable stream of micro-batches.</summary>
public interface IBatchSource : IDisposable
{
    /// <summary>The next micro-batch at sequence length <paramref name="seqLen"/>.</summary>
    MicroBatch Next(int seqLen);
}

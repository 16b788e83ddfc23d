using static TorchSharp.torch;

namespace Llama3.Multimodal.Training.Distributed;

/// <summary>World of one: every collective is the identity.</summary>
public sealed class SingleProcess : ICollectives
{
    /// <inheritdoc/>
    public int Rank => 0;
    /// <inheritdoc/>
    public int WorldSize => 1;
    /// <inheritdoc/>
    public int LocalRank => 0;
    /// <inheritdoc/>
    public string Name => "single process";
    /// <inheritdoc/>
    public void AllReduceSum(Tensor tensor) { }
    /// <inheritdoc/>
    public void Broadcast(Tensor tensor, int root = 0) { }
    /// <inheritdoc/>
    public double AllReduceSum(double value) => value;
    /// <inheritdoc/>
    public void Barrier() { }
    /// <inheritdoc/>
    public void Dispose() { }
}

using static TorchSharp.torch;

namespace Llama3.Multimodal.Training.Distributed;

/// <summary>
/// The few collective operations data-parallel training needs, independent of the engine (MPI between processes, or a
/// single process). Tensors are reduced in place.
/// </summary>
public interface ICollectives : IDisposable
{
    /// <summary>This process's rank, 0 … WorldSize−1.</summary>
    int Rank { get; }
    /// <summary>Number of processes.</summary>
    int WorldSize { get; }
    /// <summary>Rank among the processes on this machine (selects the local device).</summary>
    int LocalRank { get; }
    /// <summary>Engine name for logs ("single process", "MPI (Open MPI)").</summary>
    string Name { get; }
    /// <summary>Sums <paramref name="tensor"/> over all ranks, in place (every rank gets the sum).</summary>
    void AllReduceSum(Tensor tensor);
    /// <summary>Copies <paramref name="tensor"/> of rank <paramref name="root"/> to every rank, in place.</summary>
    void Broadcast(Tensor tensor, int root = 0);
    /// <summary>Sums a scalar over all ranks.</summary>
    double AllReduceSum(double value);
    /// <summary>Waits until every rank arrives.</summary>
    void Barrier();
}

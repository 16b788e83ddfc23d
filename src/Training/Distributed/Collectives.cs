namespace Llama3.Multimodal.Training.Distributed;

/// <summary>Chooses the collectives engine from the launch environment.</summary>
public static class Collectives
{
    /// <summary>World size announced by the launcher (mpirun, srun, mpiexec), or 1.</summary>
    public static int LaunchedWorldSize()
    {
        foreach (var v in new[] { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE" })
            if (int.TryParse(Environment.GetEnvironmentVariable(v), out int n) && n > 0) return n;
        return 1;
    }

    /// <summary>MPI when launched by an MPI launcher with more than one process, otherwise a single process.</summary>
    public static ICollectives FromEnvironment() => LaunchedWorldSize() > 1 ? new MpiCollectives() : new SingleProcess();

    /// <summary>Engines accepted by <see cref="ForDevice"/>: auto, mpi, nccl.</summary>
    public static IReadOnlyList<string> Modes { get; } = new[] { "auto", "mpi", "nccl" };

    /// <summary>
    /// The collectives for training on <paramref name="device"/>: with several MPI ranks and a CUDA device, NCCL on that
    /// device (bootstrapped over <paramref name="collectives"/>) when <paramref name="mode"/> is <c>auto</c> or <c>nccl</c>
    /// and NCCL loads; otherwise <paramref name="collectives"/> itself (MPI stages CUDA tensors through host memory).
    /// <c>nccl</c> fails with the reason when NCCL cannot be used; <paramref name="log"/> hears why <c>auto</c> fell back.
    /// The returned engine owns <paramref name="collectives"/> when it wraps it.
    /// </summary>
    public static ICollectives ForDevice(ICollectives collectives, string device, string mode = "auto", Action<string>? log = null)
    {
        if (!Modes.Contains(mode)) throw new DistributedException($"collectives '{mode}': expected one of {string.Join(", ", Modes)}.");
        bool cuda = device.StartsWith("cuda", StringComparison.OrdinalIgnoreCase);
        if (mode == "nccl" && (!cuda || collectives is not MpiCollectives))
            throw new DistributedException($"collectives 'nccl' needs a CUDA device and an MPI launch with several ranks (device '{device}', {collectives.Name}).");
        if (mode == "mpi" || !cuda || collectives is not MpiCollectives mpi) return collectives;
        int colon = device.IndexOf(':');
        int index = colon >= 0 && int.TryParse(device[(colon + 1)..], out int d) ? d : mpi.LocalRank;
        var nccl = NcclCollectives.TryCreate(mpi, index, out string why);
        if (nccl is not null) return nccl;
        if (mode == "nccl") throw new DistributedException($"collectives 'nccl': {why}.");
        log?.Invoke($"NCCL not used ({why}); CUDA tensors are reduced over MPI through host memory.");
        return collectives;
    }
}

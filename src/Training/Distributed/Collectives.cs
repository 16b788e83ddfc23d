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
}

using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training.Distributed;

/// <summary>
/// Collectives over MPI through a thin P/Invoke binding (MPI_Init/Finalize, Comm_rank/size, Allreduce, Bcast, Barrier,
/// Abort). Works with Open MPI (handles are exported globals) and MPICH-family libraries (integer handles). CUDA tensors
/// are staged through host memory. Errors come back as <see cref="DistributedException"/>; a collective that does not
/// finish within <see cref="Timeout"/> aborts the job instead of hanging.
/// </summary>
public sealed unsafe class MpiCollectives : ICollectives
{
    readonly IntPtr _lib;
    readonly IntPtr _comm, _float, _double, _byte, _sum;
    readonly void* _inPlace; // MPI_IN_PLACE: (void*)1 in Open MPI, (void*)-1 in MPICH
    readonly delegate* unmanaged<int*, byte***, int> _init;
    readonly delegate* unmanaged<int> _finalize;
    readonly delegate* unmanaged<IntPtr, int*, int> _rank, _size;
    readonly delegate* unmanaged<void*, void*, int, IntPtr, IntPtr, IntPtr, int> _allreduce;
    readonly delegate* unmanaged<void*, int, IntPtr, int, IntPtr, int> _bcast;
    readonly delegate* unmanaged<IntPtr, int> _barrier;
    readonly delegate* unmanaged<IntPtr, int, int> _abort;
    bool _disposed;

    /// <inheritdoc/>
    public int Rank { get; }
    /// <inheritdoc/>
    public int WorldSize { get; }
    /// <inheritdoc/>
    public int LocalRank { get; }
    /// <inheritdoc/>
    public string Name { get; }
    /// <summary>Longest time one collective may take before the job is aborted (default 10 minutes).</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Loads the MPI library and calls MPI_Init.</summary>
    public MpiCollectives(string? library = null)
    {
        _lib = Load(library);
        bool openMpi = NativeLibrary.TryGetExport(_lib, "ompi_mpi_comm_world", out IntPtr commWorld);
        if (openMpi)
        {
            _comm = commWorld;
            _float = Export("ompi_mpi_float"); _double = Export("ompi_mpi_double"); _byte = Export("ompi_mpi_byte"); _sum = Export("ompi_mpi_op_sum");
            Name = "MPI (Open MPI)";
            _inPlace = (void*)1;
        }
        else
        {
            // MPICH ABI: handles are fixed integers.
            _comm = (IntPtr)0x44000000; _float = (IntPtr)0x4c00040a; _double = (IntPtr)0x4c00080b; _byte = (IntPtr)0x4c00010d; _sum = (IntPtr)0x58000003;
            Name = "MPI (MPICH ABI)";
            _inPlace = (void*)-1;
        }
        _init = (delegate* unmanaged<int*, byte***, int>)Export("MPI_Init");
        _finalize = (delegate* unmanaged<int>)Export("MPI_Finalize");
        _rank = (delegate* unmanaged<IntPtr, int*, int>)Export("MPI_Comm_rank");
        _size = (delegate* unmanaged<IntPtr, int*, int>)Export("MPI_Comm_size");
        _allreduce = (delegate* unmanaged<void*, void*, int, IntPtr, IntPtr, IntPtr, int>)Export("MPI_Allreduce");
        _bcast = (delegate* unmanaged<void*, int, IntPtr, int, IntPtr, int>)Export("MPI_Bcast");
        _barrier = (delegate* unmanaged<IntPtr, int>)Export("MPI_Barrier");
        _abort = (delegate* unmanaged<IntPtr, int, int>)Export("MPI_Abort");
        Check(_init(null, null), "MPI_Init");
        int r, s;
        Check(_rank(_comm, &r), "MPI_Comm_rank");
        Check(_size(_comm, &s), "MPI_Comm_size");
        Rank = r; WorldSize = s;
        LocalRank = int.TryParse(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_LOCAL_RANK")
            ?? Environment.GetEnvironmentVariable("MPI_LOCALRANKID") ?? Environment.GetEnvironmentVariable("SLURM_LOCALID"), out int lr) ? lr : 0;
    }

    static IntPtr Load(string? library)
    {
        foreach (var name in library != null ? new[] { library } : new[] { "libmpi.so.40", "libmpi.so.12", "libmpi.so", "libmpich.so.12", "libmpi" })
            if (NativeLibrary.TryLoad(name, out IntPtr h)) return h;
        throw new DistributedException("no MPI library could be loaded (tried libmpi.so.40, libmpi.so.12, libmpich.so.12). Install Open MPI (apt-get install openmpi-bin libopenmpi-dev) and launch with mpirun.");
    }

    IntPtr Export(string name) =>
        NativeLibrary.TryGetExport(_lib, name, out IntPtr p) ? p : throw new DistributedException($"the MPI library lacks '{name}'.");

    void Check(int code, string what)
    {
        if (code != 0) throw new DistributedException($"{what} failed with MPI error code {code} on rank {Rank}.");
    }

    T Guarded<T>(string what, Func<T> body)
    {
        // A rank that died leaves the others blocked inside MPI: a timer ends the job with a clear message. (A timer,
        // not a thread per call: collectives run per gradient bucket, and cancelling a pending delay is cheap and safe.)
        using var cts = new CancellationTokenSource();
        _ = Task.Delay(Timeout, cts.Token).ContinueWith(_ =>
        {
            Console.Error.WriteLine($"error: rank {Rank}: {what} did not complete within {Timeout.TotalSeconds:F0} s (another rank died or hangs); aborting the job.");
            Console.Error.Flush();
            _abort(_comm, 3);
            Environment.Exit(3);
        }, CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
        try { return body(); }
        finally { cts.Cancel(); }
    }

    (IntPtr Type, int Count) TypeOf(Tensor t) => t.dtype switch
    {
        ScalarType.Float32 => (_float, checked((int)t.numel())),
        ScalarType.Float64 => (_double, checked((int)t.numel())),
        _ => throw new DistributedException($"collectives support f32 and f64 tensors (got {t.dtype}); reduce in f32."),
    };

    /// <inheritdoc/>
    public void AllReduceSum(Tensor tensor)
    {
        if (WorldSize == 1) return;
        WithHostBuffer(tensor, host =>
        {
            var (type, count) = TypeOf(host);
            fixed (byte* p = host.bytes)
            {
                void* ptr = p;
                Guarded("MPI_Allreduce", () => { Check(_allreduce(_inPlace, ptr, count, type, _sum, _comm), "MPI_Allreduce"); return 0; });
            }
        });
    }

    /// <inheritdoc/>
    public void Broadcast(Tensor tensor, int root = 0)
    {
        if (WorldSize == 1) return;
        WithHostBuffer(tensor, host =>
        {
            long bytes = host.numel() * host.element_size();
            fixed (byte* p = host.bytes)
            {
                void* ptr = p;
                Guarded("MPI_Bcast", () => { Check(_bcast(ptr, checked((int)bytes), _byte, root, _comm), "MPI_Bcast"); return 0; });
            }
        });
    }

    static void WithHostBuffer(Tensor t, Action<Tensor> op)
    {
        using var noGrad = torch.no_grad();
        if (t.device_type == DeviceType.CPU && t.is_contiguous()) { op(t); return; }
        using var host = t.to(CPU).contiguous();
        op(host);
        t.copy_(host);
    }

    /// <inheritdoc/>
    public double AllReduceSum(double value)
    {
        if (WorldSize == 1) return value;
        var box = new[] { value };
        Guarded("MPI_Allreduce", () =>
        {
            fixed (double* v = box) Check(_allreduce(_inPlace, v, 1, _double, _sum, _comm), "MPI_Allreduce");
            return 0;
        });
        return box[0];
    }

    /// <inheritdoc/>
    public void Barrier() => Guarded("MPI_Barrier", () => { Check(_barrier(_comm), "MPI_Barrier"); return 0; });

    /// <summary>Ends the whole job with <paramref name="code"/> (used when one rank fails).</summary>
    public void Abort(int code) => _abort(_comm, code);

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _finalize();
    }
}

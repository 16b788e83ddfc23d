using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training.Distributed;

/// <summary>
/// Collectives for CUDA tensors through NCCL (a thin P/Invoke binding to <c>libnccl.so.2</c>, the library the CUDA build
/// of libtorch ships with), bootstrapped over MPI: rank 0 makes the NCCL unique id, MPI broadcasts it, every rank joins the
/// communicator on its local device. CUDA tensors on that device are reduced in place on the GPU (on the default stream,
/// the one libtorch's kernels use when no other stream is set); CPU tensors, scalars and barriers go through MPI. A
/// collective that does not finish within the MPI <see cref="MpiCollectives.Timeout"/> aborts the communicator and the job.
/// </summary>
public sealed unsafe class NcclCollectives : ICollectives
{
    /// <summary>ncclUniqueId: 128 opaque bytes, passed by value.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 128)]
    struct UniqueId { public fixed byte Bytes[128]; }

    // ncclDataType_t and ncclRedOp_t values (nccl.h).
    const int NcclUint8 = 1, NcclInt32 = 2, NcclInt64 = 4, NcclFloat32 = 7, NcclFloat64 = 8;
    const int NcclSum = 0;

    readonly MpiCollectives _mpi;
    readonly int _device;
    readonly IntPtr _comm;
    readonly delegate* unmanaged<void*, void*, nuint, int, int, IntPtr, IntPtr, int> _allReduce;
    readonly delegate* unmanaged<void*, void*, nuint, int, int, IntPtr, IntPtr, int> _broadcast;
    readonly delegate* unmanaged<IntPtr, int> _commDestroy, _commAbort;
    readonly delegate* unmanaged<int, byte*> _errorString;
    readonly delegate* unmanaged<IntPtr, int> _streamSynchronize;
    bool _disposed;

    /// <inheritdoc/>
    public int Rank => _mpi.Rank;
    /// <inheritdoc/>
    public int WorldSize => _mpi.WorldSize;
    /// <inheritdoc/>
    public int LocalRank => _mpi.LocalRank;
    /// <inheritdoc/>
    public string Name { get; }
    /// <summary>The CUDA device index this rank's communicator runs on.</summary>
    public int Device => _device;

    NcclCollectives(MpiCollectives mpi, int device, IntPtr nccl, IntPtr cudart, int version)
    {
        _mpi = mpi; _device = device;
        Name = $"NCCL {version / 10000}.{version / 100 % 100}.{version % 100} (MPI bootstrap, {mpi.Name})";
        _allReduce = (delegate* unmanaged<void*, void*, nuint, int, int, IntPtr, IntPtr, int>)Export(nccl, "ncclAllReduce");
        _broadcast = (delegate* unmanaged<void*, void*, nuint, int, int, IntPtr, IntPtr, int>)Export(nccl, "ncclBroadcast");
        _commDestroy = (delegate* unmanaged<IntPtr, int>)Export(nccl, "ncclCommDestroy");
        _commAbort = (delegate* unmanaged<IntPtr, int>)Export(nccl, "ncclCommAbort");
        _errorString = (delegate* unmanaged<int, byte*>)Export(nccl, "ncclGetErrorString");
        _streamSynchronize = (delegate* unmanaged<IntPtr, int>)Export(cudart, "cudaStreamSynchronize");
        var getId = (delegate* unmanaged<UniqueId*, int>)Export(nccl, "ncclGetUniqueId");
        var initRank = (delegate* unmanaged<IntPtr*, int, UniqueId, int, int>)Export(nccl, "ncclCommInitRank");
        var setDevice = (delegate* unmanaged<int, int>)Export(cudart, "cudaSetDevice");

        if (setDevice(device) is int cerr and not 0) throw new DistributedException($"rank {Rank}: cudaSetDevice({device}) failed with CUDA error {cerr}.");
        UniqueId id = default;
        if (Rank == 0) Check(getId(&id), "ncclGetUniqueId");
        var bytes = new byte[128];
        if (Rank == 0) new ReadOnlySpan<byte>(id.Bytes, 128).CopyTo(bytes);
        using (var t = torch.tensor(bytes))
        {
            _mpi.Broadcast(t, 0);
            t.bytes.CopyTo(new Span<byte>(id.Bytes, 128));
        }
        IntPtr comm;
        Check(initRank(&comm, WorldSize, id, Rank), "ncclCommInitRank");
        _comm = comm;
    }

    /// <summary>
    /// NCCL collectives over <paramref name="mpi"/> for CUDA device <paramref name="device"/>, or null with the reason in
    /// <paramref name="why"/> when NCCL or the CUDA runtime cannot be loaded (the caller keeps using MPI then).
    /// </summary>
    public static NcclCollectives? TryCreate(MpiCollectives mpi, int device, out string why)
    {
        if (!torch.cuda.is_available()) { why = "CUDA is not available to libtorch"; return null; }
        if (!TryLoad(new[] { "libnccl.so.2", "libnccl.so", "nccl" }, out IntPtr nccl)) { why = "libnccl.so.2 could not be loaded"; return null; }
        if (!TryLoad(new[] { "libcudart.so.12", "libcudart.so.13", "libcudart.so.11.0", "libcudart.so", "cudart" }, out IntPtr cudart)) { why = "the CUDA runtime (libcudart) could not be loaded"; return null; }
        int version = 0;
        if (NativeLibrary.TryGetExport(nccl, "ncclGetVersion", out IntPtr gv)) ((delegate* unmanaged<int*, int>)gv)(&version);
        why = "";
        return new NcclCollectives(mpi, device, nccl, cudart, version);
    }

    static bool TryLoad(string[] names, out IntPtr handle)
    {
        foreach (var n in names) if (NativeLibrary.TryLoad(n, out handle)) return true;
        handle = IntPtr.Zero;
        return false;
    }

    static IntPtr Export(IntPtr lib, string name) =>
        NativeLibrary.TryGetExport(lib, name, out IntPtr p) ? p : throw new DistributedException($"the NCCL/CUDA library lacks '{name}'.");

    void Check(int code, string what)
    {
        if (code == 0) return;
        string msg = Marshal.PtrToStringUTF8((IntPtr)_errorString(code)) ?? "";
        throw new DistributedException($"{what} failed on rank {Rank} with NCCL error {code} ({msg}).");
    }

    /// <summary>The NCCL data type of <paramref name="t"/>'s elements; other types travel as f32 (exact for f16/bf16 broadcasts, f32 sums).</summary>
    internal static int DataType(ScalarType t) => t switch
    {
        ScalarType.Float64 => NcclFloat64,
        ScalarType.Int64 => NcclInt64,
        ScalarType.Int32 => NcclInt32,
        ScalarType.Byte => NcclUint8,
        _ => NcclFloat32,
    };

    /// <summary>The element type a tensor travels as (see <see cref="DataType"/>).</summary>
    internal static ScalarType WireType(ScalarType t) => t is ScalarType.Float64 or ScalarType.Int64 or ScalarType.Int32 or ScalarType.Byte ? t : ScalarType.Float32;

    bool OnOurDevice(Tensor t) => t.device_type == DeviceType.CUDA && t.device_index == _device;

    /// <summary>Runs <paramref name="enqueue"/> on a contiguous CUDA buffer of <paramref name="t"/> (a copy if needed) and waits for it.</summary>
    void OnDevice(Tensor t, string what, Func<IntPtr, int> enqueue)
    {
        using var noGrad = torch.no_grad();
        var wire = WireType(t.dtype);
        bool direct = OnOurDevice(t) && t.is_contiguous() && t.dtype == wire;
        using var buf = direct ? null : t.to(wire, torch.device(DeviceType.CUDA, _device)).contiguous();
        var target = buf ?? t;
        IntPtr ptr = Pointer(target);
        Guarded(what, () =>
        {
            Check(enqueue(ptr), what);
            int err = _streamSynchronize(IntPtr.Zero);
            if (err != 0) throw new DistributedException($"rank {Rank}: {what}: cudaStreamSynchronize failed with CUDA error {err}.");
        });
        if (buf is not null) t.copy_(buf);
    }

    static IntPtr Pointer(Tensor t) => t.dtype switch
    {
        ScalarType.Float32 => Offset(t.storage<float>().data_ptr(), t),
        ScalarType.Float64 => Offset(t.storage<double>().data_ptr(), t),
        ScalarType.Int64 => Offset(t.storage<long>().data_ptr(), t),
        ScalarType.Int32 => Offset(t.storage<int>().data_ptr(), t),
        ScalarType.Byte => Offset(t.storage<byte>().data_ptr(), t),
        _ => throw new DistributedException($"NCCL buffers are f32, f64, i64, i32 or u8 (got {t.dtype})."),
    };

    static IntPtr Offset(IntPtr basePtr, Tensor t) => basePtr + (nint)(t.storage_offset() * t.element_size());

    void Guarded(string what, Action body)
    {
        // A rank that died leaves the others waiting inside NCCL: abort the communicator, then the MPI job.
        using var cts = new CancellationTokenSource();
        var comm = _comm;
        _ = Task.Delay(_mpi.Timeout, cts.Token).ContinueWith(_ =>
        {
            Console.Error.WriteLine($"error: rank {Rank}: {what} did not complete within {_mpi.Timeout.TotalSeconds:F0} s (another rank died or hangs); aborting the job.");
            Console.Error.Flush();
            _commAbort(comm);
            _mpi.Abort(3);
            Environment.Exit(3);
        }, CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
        try { body(); }
        finally { cts.Cancel(); }
    }

    /// <inheritdoc/>
    public void AllReduceSum(Tensor tensor)
    {
        if (WorldSize == 1) return;
        if (tensor.device_type != DeviceType.CUDA) { _mpi.AllReduceSum(tensor); return; }
        int type = DataType(tensor.dtype);
        var count = (nuint)tensor.numel();
        OnDevice(tensor, "ncclAllReduce", p => _allReduce((void*)p, (void*)p, count, type, NcclSum, _comm, IntPtr.Zero));
    }

    /// <inheritdoc/>
    public void Broadcast(Tensor tensor, int root = 0)
    {
        if (WorldSize == 1) return;
        if (tensor.device_type != DeviceType.CUDA) { _mpi.Broadcast(tensor, root); return; }
        int type = DataType(tensor.dtype);
        var count = (nuint)tensor.numel();
        OnDevice(tensor, "ncclBroadcast", p => _broadcast((void*)p, (void*)p, count, type, root, _comm, IntPtr.Zero));
    }

    /// <inheritdoc/>
    public double AllReduceSum(double value) => _mpi.AllReduceSum(value);

    /// <inheritdoc/>
    public void Barrier() => _mpi.Barrier();

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _commDestroy(_comm);
        _mpi.Dispose();
    }
}

namespace Llama3.Multimodal.Training;

/// <summary>
/// Keeps background data preparation from running while a training thread executes tensor code.
/// </summary>
/// <remarks>
/// TorchSharp 0.107 passes numbers to libtorch as temporary native <c>Scalar</c> objects that nothing keeps alive during
/// the native call (every <c>a + b</c> passes a temporary <c>alpha = 1</c>). A garbage collection started by an allocation
/// on another thread can finalize such a temporary while libtorch still reads it: an "Unknown scalar type" error or,
/// worse, a wrong value. So background preparation (which allocates) runs only while every training thread is in a
/// window that creates no such temporaries: inside autograd's <c>backward</c> (native code throughout) or while it waits
/// for data. A training thread marks its step with <see cref="Compute"/> and the safe windows inside it with
/// <see cref="Quiet"/>; background work goes through <see cref="Run{T}"/>.
/// </remarks>
internal static class BackgroundWork
{
    static readonly object Lock = new();
    static int _computing, _active;
    [ThreadStatic] static int _depth;

    /// <summary>Marks the calling thread as running tensor code until disposed (waits for running background work first).</summary>
    public static IDisposable Compute()
    {
        _depth++;
        EnterCompute();
        return new Scope(() => { LeaveCompute(); _depth--; });
    }

    /// <summary>Opens a safe window on a thread inside <see cref="Compute"/> (no-op elsewhere) until disposed.</summary>
    public static IDisposable Quiet()
    {
        if (_depth == 0) return Scope.Empty;
        LeaveCompute();
        return new Scope(EnterCompute);
    }

    /// <summary>Runs <paramref name="work"/> once no training thread is running tensor code outside a safe window.</summary>
    public static T Run<T>(Func<T> work, CancellationToken cancel)
    {
        using (Enter(cancel)) return work();
    }

    /// <summary>
    /// Waits until no training thread is running tensor code outside a safe window and holds them off until the
    /// returned ticket is disposed. Allocates nothing before it holds: everything a background thread allocates must
    /// happen inside a ticket (a collection started outside one is exactly what this prevents).
    /// </summary>
    public static Ticket Enter(CancellationToken cancel)
    {
        lock (Lock)
        {
            while (_computing > 0)
            {
                cancel.ThrowIfCancellationRequested();
                Monitor.Wait(Lock, 50);
            }
            _active++;
        }
        return new Ticket(true);
    }

    /// <summary>Held background work (see <see cref="Enter"/>); a struct, so taking one allocates nothing.</summary>
    public readonly struct Ticket(bool held) : IDisposable
    {
        /// <summary>Lets training threads run tensor code again.</summary>
        public void Dispose()
        {
            if (!held) return;
            lock (Lock) { _active--; Monitor.PulseAll(Lock); }
        }
    }

    static void EnterCompute()
    {
        lock (Lock)
        {
            _computing++;
            while (_active > 0) Monitor.Wait(Lock);
        }
    }

    static void LeaveCompute()
    {
        lock (Lock) { _computing--; Monitor.PulseAll(Lock); }
    }

    sealed class Scope(Action? onDispose) : IDisposable
    {
        public static readonly IDisposable Empty = new Scope(null);
        Action? _onDispose = onDispose;
        public void Dispose() { _onDispose?.Invoke(); _onDispose = null; }
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Llama3.Multimodal.Text;

/// <summary>
/// Process-wide settings of the native CPU runtime that must be in place before libtorch is loaded.
/// <para>
/// libtorch's OpenMP runtime (GNU libgomp) keeps its worker threads spinning for a long while after each parallel
/// region by default. Inference alternates short parallel regions with serial work (and with the library's own
/// threads, see <see cref="SplitGemv"/>), so the spinning workers take the cores the computing threads need: on a
/// small or busy machine the first forward pass of a freshly started process ran several times slower than the
/// following ones. Workers that sleep as soon as they are idle (<c>OMP_WAIT_POLICY=PASSIVE</c>) remove that
/// penalty and change no result.
/// </para>
/// <para>
/// The setting is applied when this assembly is loaded, which in practice precedes the first TorchSharp call. An
/// application that touches TorchSharp before any type of this library should call <see cref="Configure"/> first,
/// or set the variable itself; a value already present in the environment is never overwritten.
/// </para>
/// </summary>
public static class CpuRuntime
{
    /// <summary>The OpenMP wait policy applied when the environment does not name one.</summary>
    public const string DefaultOmpWaitPolicy = "PASSIVE";

    /// <summary>The variable that selects the OpenMP wait policy.</summary>
    public const string OmpWaitPolicyVariable = "OMP_WAIT_POLICY";

    static int _configured;

#pragma warning disable CA2255 // a module initializer is the only hook that runs before the first libtorch call in every host
    [ModuleInitializer]
    internal static void OnLoad() => Configure();
#pragma warning restore CA2255

    /// <summary>
    /// Sets <c>OMP_WAIT_POLICY=PASSIVE</c> in the native process environment unless it is already set. Call it before
    /// the first TorchSharp call; later calls (and calls after libtorch is loaded) have no effect on the running
    /// OpenMP runtime. Safe to call more than once and on every platform (a no-op where it does not apply).
    /// </summary>
    public static void Configure()
    {
        if (Interlocked.Exchange(ref _configured, 1) == 1) return;
        if (OperatingSystem.IsWindows()) return;
        try
        {
            _ = setenv(OmpWaitPolicyVariable, DefaultOmpWaitPolicy, 0);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // No C library to talk to: the runtime keeps its default.
        }
    }

    /// <summary>The OpenMP wait policy the native environment holds now (null when unset or not readable).</summary>
    public static string? OmpWaitPolicy
    {
        get
        {
            if (OperatingSystem.IsWindows()) return Environment.GetEnvironmentVariable(OmpWaitPolicyVariable);
            try { return Marshal.PtrToStringAnsi(getenv(OmpWaitPolicyVariable)); }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return null; }
        }
    }

    [DllImport("libc", CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
    static extern int setenv(string name, string value, int overwrite);

    [DllImport("libc", CharSet = CharSet.Ansi, BestFitMapping = false, ThrowOnUnmappableChar = true)]
    static extern IntPtr getenv(string name);
}

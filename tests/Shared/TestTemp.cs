namespace Llama3.Multimodal.Tests.Shared;

/// <summary>
/// Folders for a test process's files: all under one folder per process (<c>{temp}/{area}/{pid}-{guid}</c>), deleted when
/// the process exits; folders of processes that are gone (a test host that was killed) are deleted by the next run, so
/// repeated test runs do not fill the disk.
/// </summary>
internal static class TestTemp
{
    static readonly object Gate = new();
    static readonly Dictionary<string, string> Roots = new();

    /// <summary>A new empty folder under this process's folder for <paramref name="area"/>.</summary>
    public static string NewDir(string area)
    {
        string root;
        lock (Gate)
        {
            if (!Roots.TryGetValue(area, out root!))
            {
                string parent = Path.Combine(Path.GetTempPath(), area);
                if (Directory.Exists(parent))
                    foreach (var old in Directory.GetDirectories(parent))
                        if (!IsRunning(Path.GetFileName(old))) Delete(old);
                root = Path.Combine(parent, $"{Environment.ProcessId}-{Guid.NewGuid():N}");
                Roots[area] = root;
                string r = root;
                AppDomain.CurrentDomain.ProcessExit += (_, _) => Delete(r);
            }
        }
        string d = Path.Combine(root, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }

    // A folder named "{pid}-…" belongs to a running process; any other name (older layouts) is stale.
    static bool IsRunning(string name)
    {
        int dash = name.IndexOf('-');
        if (dash <= 0 || !int.TryParse(name.AsSpan(0, dash), out int pid)) return false;
        try
        {
            using var p = System.Diagnostics.Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    /// <summary>Deletes <paramref name="dir"/> and everything in it, ignoring what cannot be deleted.</summary>
    public static void Delete(string dir)
    {
        try { Directory.Delete(dir, true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}

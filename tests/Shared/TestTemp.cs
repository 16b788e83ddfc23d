namespace Llama3.Multimodal.Tests.Shared;

/// <summary>
/// Folders for a test process's files: all under one folder per process (<c>{temp}/{area}/{guid}</c>), deleted when the
/// process exits, so repeated test runs do not fill the disk.
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
                root = Path.Combine(Path.GetTempPath(), area, Guid.NewGuid().ToString("N"));
                Roots[area] = root;
                string r = root;
                AppDomain.CurrentDomain.ProcessExit += (_, _) => Delete(r);
            }
        }
        string d = Path.Combine(root, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }

    /// <summary>Deletes <paramref name="dir"/> and everything in it, ignoring what cannot be deleted.</summary>
    public static void Delete(string dir)
    {
        try { Directory.Delete(dir, true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}

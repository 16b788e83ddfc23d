using System.Text;

namespace Llama3.Multimodal.Text;

/// <summary>Writes files so that a reader sees either the old content or the new one, never a partial file.</summary>
public static class AtomicFile
{
    /// <summary>Writes <paramref name="text"/> (UTF-8) to a temp file beside <paramref name="path"/>, then renames it over.</summary>
    public static void WriteAllText(string path, string text) => WriteAllBytes(path, Encoding.UTF8.GetBytes(text));

    /// <summary>Writes bytes to a temp file beside <paramref name="path"/>, flushes, then renames it over.</summary>
    public static void WriteAllBytes(string path, byte[] bytes)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        string tmp = Path.Combine(dir, "." + Path.GetFileName(full) + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
            {
                fs.Write(bytes);
                fs.Flush(true);
            }
            File.Move(tmp, full, true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }
}

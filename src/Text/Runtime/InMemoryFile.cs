using System.Runtime.InteropServices;

namespace Llama3.Multimodal.Text;

/// <summary>
/// Encoded bytes made visible to an external decoder (ffmpeg) as a path without writing them to disk: on Linux an
/// anonymous in-memory file (<c>memfd_create</c>) reached through <c>/proc/PID/fd/N</c>; elsewhere a temporary file
/// deleted on dispose. Seekable, so containers whose index sits at the end (MP4 without faststart) decode as from a file.
/// </summary>
public sealed class InMemoryFile : IDisposable
{
    [DllImport("libc", SetLastError = true, EntryPoint = "memfd_create")]
    static extern int MemfdCreate(string name, uint flags);

    readonly FileStream? _memory;
    readonly string? _temp;

    /// <summary>The path to hand to the decoder.</summary>
    public string Path { get; }

    /// <summary>Holds <paramref name="data"/>; <paramref name="ext"/> names the temporary file where no in-memory file exists.</summary>
    public InMemoryFile(byte[] data, string ext)
    {
        if (OperatingSystem.IsLinux())
        {
            int fd = -1;
            try { fd = MemfdCreate("l3mm-media", 0); } catch (EntryPointNotFoundException) { } catch (DllNotFoundException) { }
            if (fd >= 0)
            {
                _memory = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true), FileAccess.ReadWrite, 1, false);
                _memory.Write(data);
                _memory.Flush();
                Path = $"/proc/{Environment.ProcessId}/fd/{fd}";
                return;
            }
        }
        _temp = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"l3mm-{Guid.NewGuid():N}.{ext}");
        File.WriteAllBytes(_temp, data);
        Path = _temp;
    }

    /// <summary>Frees the memory (or deletes the temporary file).</summary>
    public void Dispose()
    {
        _memory?.Dispose();
        if (_temp is not null) try { File.Delete(_temp); } catch (IOException) { }
    }
}

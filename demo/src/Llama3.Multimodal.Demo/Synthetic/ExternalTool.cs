using System.Diagnostics;

namespace Llama3.Multimodal.Demo;

/// <summary>Finds and runs the external programs the makers need (espeak-ng, sox, ffmpeg), failing with a message
/// that names the missing tool and how to install it.</summary>
internal static class ExternalTool
{
    public static string Require(string name, string package)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string p = Path.Combine(dir, name);
            if (File.Exists(p)) return p;
        }
        throw new SyntheticDataException($"'{name}' was not found on PATH; it is needed to make this data. Install it with: apt-get install -y {package}");
    }

    /// <summary>Runs a program, feeding <paramref name="stdin"/> (if any) and returning its standard output; a non-zero
    /// exit is a <see cref="SyntheticDataException"/> quoting the end of standard error.</summary>
    public static byte[] Run(string exe, IEnumerable<string> args, byte[]? stdin = null, Action<Stream>? writeStdin = null)
    {
        var psi = new ProcessStartInfo(exe)
        {
            RedirectStandardInput = stdin != null || writeStdin != null,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new SyntheticDataException($"could not start {exe}.");
        var errTask = p.StandardError.ReadToEndAsync();
        var outMs = new MemoryStream();
        var outTask = p.StandardOutput.BaseStream.CopyToAsync(outMs);
        if (psi.RedirectStandardInput)
        {
            try
            {
                var s = p.StandardInput.BaseStream;
                if (stdin != null) s.Write(stdin);
                writeStdin?.Invoke(s);
                s.Flush();
                p.StandardInput.Close();
            }
            catch (IOException e)
            {
                p.WaitForExit();
                throw new SyntheticDataException($"{Path.GetFileName(exe)} stopped reading its input (exit {p.ExitCode}): {Tail(errTask.Result)}", e);
            }
        }
        outTask.Wait();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new SyntheticDataException($"{Path.GetFileName(exe)} {string.Join(' ', psi.ArgumentList)} failed with exit code {p.ExitCode}: {Tail(errTask.Result)}");
        return outMs.ToArray();
    }

    static string Tail(string s) => s.Length > 600 ? s[^600..] : s;
}

// MSBuild task: lets libLibTorchSharp.so (built against GCC 13's libstdc++) load on hosts whose libstdc++ lacks
// GLIBCXX_3.4.32. The only symbol bound to that version (std::ios_base_library_init) is never called, so marking the
// version need WEAK (VER_FLG_WEAK = 2) in .gnu.version_r is enough for the dynamic loader. No-op when the host's
// libstdc++ defines the version, when the file is already patched, and on non-Linux hosts.
#nullable enable
using System;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class PatchLibTorchSharp : Task
{
    const string NeededVersion = "GLIBCXX_3.4.32";
    const uint ShtGnuVerdef = 0x6ffffffd;
    const uint ShtGnuVerneed = 0x6ffffffe;

    [Required]
    public string SearchRoot { get; set; } = "";

    public override bool Execute()
    {
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux)) return true;
        if (!Directory.Exists(SearchRoot)) return true;
        string[] targets = Directory.GetFiles(SearchRoot, "libLibTorchSharp.so", SearchOption.AllDirectories);
        if (targets.Length == 0) return true;
        string? host = FindHostLibStdCxx();
        if (host != null && HostDefines(host, NeededVersion))
        {
            Log.LogMessage(MessageImportance.Low, $"libstdc++ at {host} defines {NeededVersion}; nothing to patch.");
            return true;
        }
        foreach (string t in targets)
        {
            try
            {
                if (MarkWeak(t, NeededVersion))
                    Log.LogMessage(MessageImportance.Normal, $"Marked {NeededVersion} weak in {t} (host libstdc++ lacks it).");
            }
            catch (Exception e)
            {
                Log.LogWarning($"Could not patch {t}: {e.Message}");
            }
        }
        return true;
    }

    static string? FindHostLibStdCxx()
    {
        foreach (string d in new[] { "/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib64" })
        {
            string p = Path.Combine(d, "libstdc++.so.6");
            if (File.Exists(p)) return p;
        }
        return null;
    }

    struct Section { public uint Type; public ulong Offset; public ulong Size; public uint Link; }

    static Section[] ReadSections(byte[] b)
    {
        if (b.Length < 64 || b[0] != 0x7f || b[1] != (byte)'E' || b[2] != (byte)'L' || b[3] != (byte)'F' || b[4] != 2 || b[5] != 1)
            throw new InvalidDataException("not a little-endian 64-bit ELF file");
        ulong shoff = BitConverter.ToUInt64(b, 0x28);
        int shentsize = BitConverter.ToUInt16(b, 0x3A);
        int shnum = BitConverter.ToUInt16(b, 0x3C);
        var s = new Section[shnum];
        for (int i = 0; i < shnum; i++)
        {
            int o = checked((int)shoff + i * shentsize);
            s[i] = new Section
            {
                Type = BitConverter.ToUInt32(b, o + 4),
                Offset = BitConverter.ToUInt64(b, o + 0x18),
                Size = BitConverter.ToUInt64(b, o + 0x20),
                Link = BitConverter.ToUInt32(b, o + 0x28),
            };
        }
        return s;
    }

    static string CString(byte[] b, int o)
    {
        int e = o;
        while (e < b.Length && b[e] != 0) e++;
        return Encoding.ASCII.GetString(b, o, e - o);
    }

    static bool HostDefines(string path, string version)
    {
        byte[] b = File.ReadAllBytes(path);
        Section[] secs = ReadSections(b);
        foreach (Section s in secs)
        {
            if (s.Type != ShtGnuVerdef) continue;
            int str = (int)secs[s.Link].Offset;
            int o = (int)s.Offset;
            while (true)
            {
                int aux = o + (int)BitConverter.ToUInt32(b, o + 12);
                uint name = BitConverter.ToUInt32(b, aux);
                if (CString(b, str + (int)name) == version) return true;
                uint next = BitConverter.ToUInt32(b, o + 16);
                if (next == 0) break;
                o += (int)next;
            }
        }
        return false;
    }

    static bool MarkWeak(string path, string version)
    {
        byte[] b = File.ReadAllBytes(path);
        Section[] secs = ReadSections(b);
        foreach (Section s in secs)
        {
            if (s.Type != ShtGnuVerneed) continue;
            int str = (int)secs[s.Link].Offset;
            int o = (int)s.Offset;
            while (true)
            {
                int cnt = BitConverter.ToUInt16(b, o + 2);
                int a = o + (int)BitConverter.ToUInt32(b, o + 8);
                for (int k = 0; k < cnt; k++)
                {
                    uint name = BitConverter.ToUInt32(b, a + 8);
                    if (CString(b, str + (int)name) == version)
                    {
                        ushort flags = BitConverter.ToUInt16(b, a + 4);
                        if ((flags & 2) != 0) return false;
                        flags |= 2;
                        b[a + 4] = (byte)(flags & 0xff);
                        b[a + 5] = (byte)(flags >> 8);
                        string tmp = path + ".patching";
                        File.WriteAllBytes(tmp, b);
                        File.Replace(tmp, path, null);
                        return true;
                    }
                    a += (int)BitConverter.ToUInt32(b, a + 12);
                }
                uint next = BitConverter.ToUInt32(b, o + 12);
                if (next == 0) break;
                o += (int)next;
            }
        }
        return false;
    }
}

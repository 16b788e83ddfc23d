using System.Diagnostics;
using System.Text;

namespace Llama3.Multimodal.Speech.Tests;

/// <summary>Audio made by the tests: tones, hand-written WAV files, espeak-ng speech and ffmpeg conversions.</summary>
internal static class TestAudio
{
    public static string TempDir()
    {
        string d = Path.Combine(Path.GetTempPath(), "l3mm-speech-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }

    public static float[] Tone(double hz, int rate, double seconds, double amplitude = 1.0)
    {
        var s = new float[(int)(rate * seconds)];
        for (int i = 0; i < s.Length; i++) s[i] = (float)(amplitude * Math.Sin(2 * Math.PI * hz * i / rate));
        return s;
    }

    /// <summary>Writes a WAV file by hand (independent of the reader): PCM 8/16/24/32, float 32/64, optional extensible header.</summary>
    public static byte[] Wav(double[][] channels, int rate, int bits, bool isFloat, bool extensible = false)
    {
        int ch = channels.Length, n = channels[0].Length, bps = bits / 8;
        var data = new MemoryStream();
        var w = new BinaryWriter(data);
        for (int i = 0; i < n; i++)
            for (int c = 0; c < ch; c++)
            {
                double v = channels[c][i];
                if (isFloat) { if (bits == 32) w.Write((float)v); else w.Write(v); continue; }
                switch (bits)
                {
                    case 8: w.Write((byte)Math.Clamp(Math.Round(v * 128 + 128), 0, 255)); break;
                    case 16: w.Write((short)Math.Clamp(Math.Round(v * 32768), -32768, 32767)); break;
                    case 24:
                        int x = (int)Math.Clamp(Math.Round(v * 8388608), -8388608, 8388607);
                        w.Write((byte)x); w.Write((byte)(x >> 8)); w.Write((byte)(x >> 16)); break;
                    default: w.Write((int)Math.Clamp(Math.Round(v * 2147483648.0), int.MinValue, int.MaxValue)); break;
                }
            }
        var fmt = new MemoryStream();
        var f = new BinaryWriter(fmt);
        ushort tag = extensible ? (ushort)0xFFFE : isFloat ? (ushort)3 : (ushort)1;
        f.Write(tag); f.Write((ushort)ch); f.Write(rate); f.Write(rate * ch * bps); f.Write((ushort)(ch * bps)); f.Write((ushort)bits);
        if (extensible)
        {
            f.Write((ushort)22); f.Write((ushort)bits); f.Write(ch == 1 ? 4 : 3);
            f.Write(isFloat ? (ushort)3 : (ushort)1);
            f.Write(new byte[] { 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71 });
        }
        var o = new MemoryStream();
        var b = new BinaryWriter(o);
        b.Write(Encoding.ASCII.GetBytes("RIFF")); b.Write(0);
        b.Write(Encoding.ASCII.GetBytes("WAVE"));
        b.Write(Encoding.ASCII.GetBytes("LIST")); b.Write(5); b.Write(Encoding.ASCII.GetBytes("INFOx")); b.Write((byte)0); // odd chunk + pad
        b.Write(Encoding.ASCII.GetBytes("fmt ")); b.Write((int)fmt.Length); b.Write(fmt.ToArray());
        b.Write(Encoding.ASCII.GetBytes("data")); b.Write((int)data.Length); b.Write(data.ToArray());
        if (data.Length % 2 == 1) b.Write((byte)0);
        var bytes = o.ToArray();
        BitConverter.GetBytes(bytes.Length - 8).CopyTo(bytes, 4);
        return bytes;
    }

    public static string WriteWav(string dir, string name, float[] mono, int rate)
    {
        string p = Path.Combine(dir, name);
        File.WriteAllBytes(p, Wav(new[] { mono.Select(x => (double)x).ToArray() }, rate, 16, false));
        return p;
    }

    static string Run(string exe, params string[] args)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process p;
        try { p = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"the test needs '{exe}' (install it: apt-get install -y espeak-ng ffmpeg sox).", e);
        }
        using (p)
        {
            var err = p.StandardError.ReadToEndAsync();
            string outText = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0) throw new InvalidOperationException($"{exe} {string.Join(' ', args)} failed: {err.Result}");
            return outText;
        }
    }

    /// <summary>Real speech from espeak-ng (22 050 Hz mono 16-bit WAV).</summary>
    public static string Speak(string dir, string text, string name = "speech.wav", string voice = "en")
    {
        string p = Path.Combine(dir, name);
        Run("espeak-ng", "-v", voice, "-w", p, text);
        return p;
    }

    /// <summary>Converts with ffmpeg (format by extension of <paramref name="target"/>).</summary>
    public static string Convert(string source, string target)
    {
        Run("ffmpeg", "-nostdin", "-v", "error", "-y", "-i", source, target);
        return target;
    }

    static readonly Lazy<string> _speechDir = new(TempDir);
    static readonly Lazy<string> _speech = new(() => Speak(_speechDir.Value, "The quick brown fox jumps over the lazy dog. Speech recognition with a conformer."));

    /// <summary>One shared espeak-ng utterance (about four seconds).</summary>
    public static string SharedSpeech => _speech.Value;
}

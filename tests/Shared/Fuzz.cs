using System.Diagnostics;
using System.Text;

namespace Llama3.Multimodal.Tests.Shared;

/// <summary>
/// Seeded mutation fuzzing shared by the parser tests: every mutated input must either parse or fail with the
/// parser's own documented exception type, within a time bound and a managed-allocation bound, without crashing.
/// </summary>
internal static class Fuzz
{
    /// <summary>One seeded mutation: bit flips, truncation, random bytes, digit changes, duplicated slices, inserted JSON tokens.</summary>
    public static byte[] Mutate(byte[] src, Random rng)
    {
        var b = (byte[])src.Clone();
        if (b.Length == 0) return new[] { (byte)rng.Next(256) };
        switch (rng.Next(6))
        {
            case 0:
                for (int i = 0, n = rng.Next(1, 8); i < n; i++) b[rng.Next(b.Length)] ^= (byte)(1 << rng.Next(8));
                return b;
            case 1:
                return b[..rng.Next(b.Length)];
            case 2:
                for (int i = 0, n = rng.Next(1, 16); i < n; i++) b[rng.Next(b.Length)] = (byte)rng.Next(256);
                return b;
            case 3:
                {
                    var digits = Enumerable.Range(0, b.Length).Where(i => b[i] >= '0' && b[i] <= '9').ToArray();
                    if (digits.Length > 0) b[digits[rng.Next(digits.Length)]] = (byte)('0' + rng.Next(10));
                    else b[rng.Next(b.Length)] = 0xFF;
                    return b;
                }
            case 4:
                {
                    int s = rng.Next(b.Length), len = rng.Next(1, Math.Min(64, b.Length - s + 1));
                    return b[..s].Concat(b.Skip(s).Take(len)).Concat(b[s..]).ToArray();
                }
            default:
                {
                    int s = rng.Next(b.Length);
                    byte[] ins = Encoding.ASCII.GetBytes(new[] { "{", "}", "[", "]", "\"", ",", ":", "-1", "1e999", "NaN", "null", "\n" }[rng.Next(12)]);
                    return b[..s].Concat(ins).Concat(b[s..]).ToArray();
                }
        }
    }

    /// <summary>
    /// Feeds <paramref name="count"/> mutations of <paramref name="seed"/> (written to a file with extension
    /// <paramref name="ext"/>) to <paramref name="parse"/>; fails on any exception other than <paramref name="expected"/>,
    /// on an input slower than <paramref name="maxMillis"/>, or one allocating more than <paramref name="maxAllocBytes"/>.
    /// </summary>
    public static void Run(byte[] seed, int count, int rngSeed, string ext, Action<string> parse, Type expected,
        long maxMillis = 5000, long maxAllocBytes = 256L << 20)
    {
        string dir = Directory.CreateTempSubdirectory("l3mm-fuzz").FullName;
        var rng = new Random(rngSeed);
        for (int i = 0; i < count; i++)
        {
            string path = Path.Combine(dir, $"f{i % 8}{ext}");
            File.WriteAllBytes(path, Mutate(seed, rng));
            long alloc0 = GC.GetAllocatedBytesForCurrentThread();
            var sw = Stopwatch.StartNew();
            try { parse(path); }
            catch (Exception e) when (expected.IsInstanceOfType(e)) { }
            catch (Exception e)
            {
                throw new Xunit.Sdk.XunitException($"input {i} (seed {rngSeed}) raised {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            }
            long ms = sw.ElapsedMilliseconds, alloc = GC.GetAllocatedBytesForCurrentThread() - alloc0;
            if (ms > maxMillis) throw new Xunit.Sdk.XunitException($"input {i} (seed {rngSeed}) took {ms} ms");
            if (alloc > maxAllocBytes) throw new Xunit.Sdk.XunitException($"input {i} (seed {rngSeed}) allocated {alloc} bytes");
        }
    }
}

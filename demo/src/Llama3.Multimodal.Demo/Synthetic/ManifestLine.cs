using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Llama3.Multimodal.Demo;

/// <summary>Writes one JSONL record with fields in the given order, compact and byte-stable (LF line ends,
/// null fields left out), so manifests of one seed are byte-identical.</summary>
internal static class ManifestLine
{
    static readonly JsonWriterOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, Indented = false };

    public static string Of(params (string Key, object? Value)[] fields)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, Options))
        {
            w.WriteStartObject();
            foreach (var (k, v) in fields)
            {
                switch (v)
                {
                    case null: break;
                    case string s: w.WriteString(k, s); break;
                    case int i: w.WriteNumber(k, i); break;
                    case bool b: w.WriteBoolean(k, b); break;
                    case double d: w.WriteNumber(k, d); break;
                    default: throw new ArgumentException($"unsupported manifest value type {v.GetType().Name}");
                }
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    /// <summary>Writes lines with LF endings atomically (temp file + rename).</summary>
    public static void WriteAll(string path, IEnumerable<string> lines)
    {
        var sb = new StringBuilder();
        foreach (var l in lines) sb.Append(l).Append('\n');
        Llama3.Multimodal.Text.AtomicFile.WriteAllText(path, sb.ToString());
    }

    /// <summary>Manifest-relative path with forward slashes.</summary>
    public static string Relative(string manifestDir, string file) => Path.GetRelativePath(manifestDir, file).Replace('\\', '/');
}

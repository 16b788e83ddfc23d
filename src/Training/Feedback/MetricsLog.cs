using System.Text.Json.Nodes;

namespace Llama3.Multimodal.Training;

/// <summary>Appends one JSON object per line to <c>metrics.jsonl</c> (flushed per line so a crash keeps what was logged).</summary>
internal sealed class MetricsLog : IDisposable
{
    readonly StreamWriter _w;
    public MetricsLog(string path) { _w = new StreamWriter(path, append: true) { AutoFlush = true }; }
    public void Write(JsonObject o) => _w.WriteLine(o.ToJsonString());
    public void Dispose() => _w.Dispose();
}

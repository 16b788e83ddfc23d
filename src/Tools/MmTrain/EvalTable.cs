using System.Globalization;
using System.Text.Json.Nodes;

namespace Llama3.Multimodal.Tools.MmTrain;

/// <summary>
/// <c>mm-train eval --table</c>: an evaluation's JSON as a compact table (each listed record's input, prediction and,
/// where they differ, reference), then its scores on one line.
/// </summary>
static class EvalTable
{
    public static void Write(JsonObject result, TextWriter output)
    {
        var rows = (result["examples"] as JsonArray ?? new JsonArray()).OfType<JsonObject>()
            .Select(e => (Input: Str(e, "input"), Prediction: Str(e, "prediction"), Reference: Str(e, "reference"))).ToList();
        int inputWidth = Math.Max("input".Length, rows.Count == 0 ? 0 : rows.Max(r => r.Input.Length));
        int predictionWidth = Math.Min(60, Math.Max("prediction".Length, rows.Count == 0 ? 0 : rows.Max(r => r.Prediction.Length)));
        output.WriteLine($"  {"input".PadRight(inputWidth)}  {"prediction".PadRight(predictionWidth)}  reference");
        foreach (var (input, prediction, reference) in rows)
        {
            bool same = prediction == reference;
            output.WriteLine($"{(same ? "✓" : "✗")} {input.PadRight(inputWidth)}  {prediction.PadRight(predictionWidth)}  {(same ? "(same)" : reference)}");
        }
        int count = result["count"]?.GetValue<int>() ?? rows.Count;
        if (rows.Count < count) output.WriteLine($"  … {count - rows.Count} more (--examples -1 lists every record)");
        output.WriteLine(Scores(result, count));
    }

    static string Str(JsonObject o, string key) => o[key]?.GetValue<string>() ?? "";

    // Top-level numbers (rates as percentages), then every correct/total group.
    static string Scores(JsonObject result, int count)
    {
        var parts = new List<string> { $"{count} records" };
        foreach (var (key, value) in result)
            if (value is JsonValue v && key != "count" && v.TryGetValue<double>(out double x))
                parts.Add($"{key.Replace('_', ' ')} {Percent(x)}");
        foreach (var (key, value) in result)
            if (value is JsonObject group && group.All(kv => kv.Value is JsonObject g && g["correct"] is not null))
                parts.Add($"{key.Replace('_', ' ')}: " + string.Join(", ", group.Select(kv =>
                    $"{kv.Key} {kv.Value!["correct"]!.GetValue<int>()}/{kv.Value["total"]!.GetValue<int>()}")));
        return "scores: " + string.Join(" · ", parts);
    }

    static string Percent(double x) => (100 * x).ToString("0.0", CultureInfo.InvariantCulture) + " %";
}

using System.Diagnostics;

namespace Llama3.Multimodal.Tools.Mm.Commands;

/// <summary>
/// Time to first token as a user sees it: started before the model is loaded, stopped when the first generated token
/// arrives (or, when none is generated, when generation ends).
/// </summary>
internal sealed class FirstTokenClock
{
    readonly Stopwatch _sw = Stopwatch.StartNew();
    double? _first;

    /// <summary>Seconds since the clock started.</summary>
    public double Elapsed => _sw.Elapsed.TotalSeconds;

    /// <summary>Records the first token (later calls do nothing).</summary>
    public void Token() => _first ??= _sw.Elapsed.TotalSeconds;

    /// <summary>Seconds from the start to the first token, or to now when no token came.</summary>
    public double FirstTokenSeconds => _first ?? _sw.Elapsed.TotalSeconds;
}

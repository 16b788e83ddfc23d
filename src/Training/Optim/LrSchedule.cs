namespace Llama3.Multimodal.Training;

/// <summary>
/// Learning rate of update number <c>s</c> (0-based). Warm-up: <c>peak·(s+1)/W</c> for <c>s &lt; W</c>. Then, with
/// <c>p = (s−W)/(T−W)</c> clamped to [0, 1]: cosine <c>floor + (peak−floor)·½(1+cos πp)</c>; linear (annealing)
/// <c>peak·(1−p)</c>, reaching 0 at <c>T</c>; constant <c>peak</c>.
/// </summary>
/// <param name="Kind"><c>cosine</c>, <c>linear</c> or <c>constant</c>.</param>
/// <param name="Peak">Peak learning rate.</param>
/// <param name="Floor">Cosine floor.</param>
/// <param name="Warmup">Warm-up steps W.</param>
/// <param name="Total">Schedule length T (warm-up included).</param>
public sealed record LrSchedule(string Kind, double Peak, double Floor, long Warmup, long Total)
{
    /// <summary>The schedule of an optimizer section.</summary>
    public static LrSchedule From(OptimSection o) => new(o.Schedule, o.Lr, o.MinLr, o.WarmupSteps, o.TotalSteps);

    /// <summary>Learning rate of update <paramref name="step"/>.</summary>
    public double At(long step)
    {
        if (step < Warmup) return Peak * (step + 1) / Warmup;
        double p = Total > Warmup ? Math.Clamp((double)(step - Warmup) / (Total - Warmup), 0, 1) : 1;
        return Kind switch
        {
            "cosine" => Floor + (Peak - Floor) * 0.5 * (1 + Math.Cos(Math.PI * p)),
            "linear" => Peak * (1 - p),
            "constant" => Peak,
            _ => throw new Text.ConfigException($"unknown schedule '{Kind}' (cosine, linear, constant)."),
        };
    }
}

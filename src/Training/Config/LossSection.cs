namespace Llama3.Multimodal.Training;

/// <summary>Recipe loss settings.</summary>
public sealed record LossSection
{
    /// <summary>DPO β; default 0.1.</summary>
    public double DpoBeta { get; init; } = 0.1;
    /// <summary>Weight of the NLL term on the chosen response in DPO; default 0.2.</summary>
    public double NllWeight { get; init; } = 0.2;
    /// <summary>DPO reference model folder; default: <see cref="ModelSection.InitFrom"/> (or the same fresh init).</summary>
    public string? Reference { get; init; }
    /// <summary>Use the edited response (when present) as the chosen one in DPO; default true.</summary>
    public bool DpoUseEdited { get; init; } = true;
    /// <summary>
    /// DPO reference updates (Llama 3 §7.5: the reference model is updated as an exponential moving average of the policy
    /// every k steps): after every <see cref="ReferenceUpdateEvery"/>-th optimizer step, each reference weight becomes
    /// <c>ema · reference + (1 − ema) · policy</c>. 1 keeps the reference frozen. Default 1 for <c>dpo</c>; see the
    /// <c>vision-dpo</c> defaults.
    /// </summary>
    public double ReferenceEma { get; init; } = 1;
    /// <summary>The k of <see cref="ReferenceEma"/>: optimizer steps between reference updates; 0 (the <c>dpo</c> default) = never.</summary>
    public int ReferenceUpdateEvery { get; init; }
}

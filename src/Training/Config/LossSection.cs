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
}

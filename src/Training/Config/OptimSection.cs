namespace Llama3.Multimodal.Training;

/// <summary>AdamW and learning-rate schedule (defaults: Llama 3 initial pretraining).</summary>
public sealed record OptimSection
{
    /// <summary>Peak learning rate; default 8e-5.</summary>
    public double Lr { get; init; } = 8e-5;
    /// <summary>Floor of the cosine schedule; default 8e-7.</summary>
    public double MinLr { get; init; } = 8e-7;
    /// <summary>AdamW β1; default 0.9.</summary>
    public double Beta1 { get; init; } = 0.9;
    /// <summary>AdamW β2; default 0.95.</summary>
    public double Beta2 { get; init; } = 0.95;
    /// <summary>AdamW ε; default 1e-8.</summary>
    public double Eps { get; init; } = 1e-8;
    /// <summary>Decoupled weight decay (not applied to norms, biases, gates, embeddings); default 0.1.</summary>
    public double WeightDecay { get; init; } = 0.1;
    /// <summary>Global gradient-norm clip; default 1.0; 0 disables.</summary>
    public double GradClip { get; init; } = 1.0;
    /// <summary><c>cosine</c> (warm-up + cosine to <see cref="MinLr"/>), <c>linear</c> (warm-up + linear decay to zero, annealing) or <c>constant</c> (warm-up + constant).</summary>
    public string Schedule { get; init; } = "cosine";
    /// <summary>Linear warm-up steps; default 8000.</summary>
    public long WarmupSteps { get; init; } = 8000;
    /// <summary>Steps over which the schedule runs (warm-up included); default 1 200 000.</summary>
    public long TotalSteps { get; init; } = 1_200_000;
}

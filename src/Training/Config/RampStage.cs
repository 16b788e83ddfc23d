namespace Llama3.Multimodal.Training;

/// <summary>One stage of the batch-size ramp.</summary>
/// <param name="AfterTokens">Training tokens seen before this stage starts.</param>
/// <param name="Global">Global batch (in the batch unit) during the stage.</param>
/// <param name="SeqLen">Sequence length during the stage.</param>
public sealed record RampStage(long AfterTokens, long Global, int SeqLen);

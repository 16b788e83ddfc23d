namespace Llama3.Multimodal.Training;

/// <summary>A position in a training stream: epoch, index into that epoch's (shuffled) order, token offset inside the record.</summary>
/// <param name="Epoch">Epoch number (0-based).</param>
/// <param name="Index">Index into the epoch's record order.</param>
/// <param name="Offset">Tokens of that record already consumed (packing splits documents).</param>
public sealed record DataCursor(long Epoch, long Index, long Offset)
{
    /// <summary>The start of the stream.</summary>
    public static DataCursor Start { get; } = new(0, 0, 0);
}

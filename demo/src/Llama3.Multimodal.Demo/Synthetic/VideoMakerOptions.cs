namespace Llama3.Multimodal.Demo;

/// <summary>Options of <see cref="VideoDataMaker"/>.</summary>
/// <param name="Count">Number of clips.</param>
/// <param name="Seed">Random seed; the same options give byte-identical files (x264 runs single-threaded).</param>
/// <param name="Size">Square frame side in pixels (even; e.g. 64 or 112).</param>
/// <param name="Seconds">Clip length in seconds (1…10); the first event fills the first half, the second the second half.</param>
/// <param name="Fps">Frames per second (2…30).</param>
/// <param name="MaxParallelism">ffmpeg processes at once (sampling is sequential, so output does not depend on it).</param>
public sealed record VideoMakerOptions(int Count, int Seed = 0, int Size = 64, double Seconds = 3, int Fps = 8, int MaxParallelism = 2)
{
    /// <summary>Frames per clip.</summary>
    public int Frames => (int)Math.Round(Seconds * Fps);
}

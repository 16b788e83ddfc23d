namespace Llama3.Multimodal.Video;

/// <summary>Settings of <see cref="VideoFrameReader.Read"/>.</summary>
public sealed record FrameSamplingOptions
{
    /// <summary>Frames to take, uniformly over the whole clip (Llama 3 paper §7.2: 64; 16 in video pretraining, §7.4).</summary>
    public int NumFrames { get; init; } = 64;
    /// <summary>Output width in pixels; null keeps the displayed (rotated) width.</summary>
    public int? Width { get; init; }
    /// <summary>Output height in pixels; null keeps the displayed (rotated) height.</summary>
    public int? Height { get; init; }
    /// <summary>How to reach Width × Height when both are set (default <see cref="FrameResize.FitPad"/>).</summary>
    public FrameResize Resize { get; init; } = FrameResize.FitPad;
    /// <summary>Folder holding ffmpeg and ffprobe; null = <c>LLAMA3MM_FFMPEG_DIR</c> or <c>PATH</c>.</summary>
    public string? FfmpegDirectory { get; init; }

    /// <summary>Checks ranges; throws <see cref="ArgumentException"/> naming the bad value.</summary>
    public FrameSamplingOptions Validate()
    {
        if (NumFrames < 1 || NumFrames > 4096) throw new ArgumentException($"number of frames {NumFrames} must be in 1..4096.");
        if (Width is int w && (w < 1 || w > 16384)) throw new ArgumentException($"frame width {w} must be in 1..16384.");
        if (Height is int h && (h < 1 || h > 16384)) throw new ArgumentException($"frame height {h} must be in 1..16384.");
        if (Width.HasValue != Height.HasValue) throw new ArgumentException("give both frame width and height, or neither.");
        return this;
    }
}

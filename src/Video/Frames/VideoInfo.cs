namespace Llama3.Multimodal.Video;

/// <summary>What <see cref="VideoProbe"/> learned about a file's first video stream.</summary>
public sealed record VideoInfo
{
    /// <summary>The probed file.</summary>
    public required string Path { get; init; }
    /// <summary>Container format name(s) as ffprobe reports them (e.g. <c>mov,mp4,m4a,3gp,3g2,mj2</c>).</summary>
    public required string Container { get; init; }
    /// <summary>Index of the video stream inside the file (the first video stream that is not cover art).</summary>
    public required int StreamIndex { get; init; }
    /// <summary>Video codec name (e.g. <c>h264</c>, <c>vp9</c>, <c>gif</c>).</summary>
    public required string Codec { get; init; }
    /// <summary>Coded width in pixels (before rotation).</summary>
    public required int CodedWidth { get; init; }
    /// <summary>Coded height in pixels (before rotation).</summary>
    public required int CodedHeight { get; init; }
    /// <summary>
    /// Clockwise display rotation in degrees (0, 90, 180 or 270) from the stream's display matrix or <c>rotate</c>
    /// tag; phone videos shot in portrait typically carry 90 or 270.
    /// </summary>
    public required int RotationDegrees { get; init; }
    /// <summary>Number of video frames (packets counted, or decoded frames counted when packets mislead).</summary>
    public required int FrameCount { get; init; }
    /// <summary>Duration in seconds (stream duration, else container duration; 0 when unknown).</summary>
    public required double DurationSeconds { get; init; }
    /// <summary>Average frame rate in frames per second = frames ÷ duration (so also right for variable-rate streams); the stream's average rate when the duration is unknown.</summary>
    public required double FrameRate { get; init; }

    /// <summary>Width as displayed, i.e. after applying the rotation.</summary>
    public int DisplayWidth => RotationDegrees % 180 == 0 ? CodedWidth : CodedHeight;
    /// <summary>Height as displayed, i.e. after applying the rotation.</summary>
    public int DisplayHeight => RotationDegrees % 180 == 0 ? CodedHeight : CodedWidth;
}

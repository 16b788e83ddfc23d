namespace Llama3.Multimodal.Video;

/// <summary>
/// A video file could not be decoded: the file is missing, empty, corrupt or holds no video stream, or the ffmpeg tools
/// are not installed. The message starts with the file and says what went wrong.
/// </summary>
public sealed class MediaDecodeException : Exception
{
    /// <summary>The file that failed.</summary>
    public string MediaPath { get; }

    /// <summary>Creates the exception for <paramref name="source"/>.</summary>
    public MediaDecodeException(string source, string message, Exception? inner = null) : base($"{source}: {message}", inner) =>
        MediaPath = source;
}

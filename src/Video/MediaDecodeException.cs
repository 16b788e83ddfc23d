namespace Llama3.Multimodal.Video;

/// <summary>
/// A media file could not be decoded: the file is missing, empty, corrupt or holds no video stream, or the ffmpeg tools
/// are not installed. The message names the file and what went wrong.
/// </summary>
public sealed class MediaDecodeException : Exception
{
    /// <summary>The file that failed, when there is one.</summary>
    public string? FilePath { get; }

    /// <summary>Creates the exception for <paramref name="filePath"/>.</summary>
    public MediaDecodeException(string? filePath, string message, Exception? inner = null)
        : base(filePath is null ? message : $"{filePath}: {message}", inner) => FilePath = filePath;
}

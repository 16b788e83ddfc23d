namespace Llama3.Multimodal.Text;

/// <summary>
/// An image, audio or video file (or byte buffer) cannot be decoded: missing, empty, truncated, corrupt, of an
/// unsupported format, or the external decoder (ffmpeg) is missing. The message names the source and what was expected.
/// One type for every modality, so applications catch one thing.
/// </summary>
public sealed class MediaDecodeException : Exception
{
    /// <summary>The file path or source name that failed, when known.</summary>
    public string? MediaPath { get; }

    /// <summary>Creates the exception from a message that already names the source.</summary>
    public MediaDecodeException(string message, Exception? inner = null) : base(message, inner) { }

    /// <summary>Creates the exception for <paramref name="source"/>; the message becomes "source: message".</summary>
    public MediaDecodeException(string source, string message, Exception? inner = null) : base($"{source}: {message}", inner)
    {
        MediaPath = source;
    }
}

namespace Llama3.Multimodal.Vision;

/// <summary>An image file (or byte buffer) could not be decoded: missing, empty, truncated, corrupt or of an unsupported format. The message names the source.</summary>
public sealed class MediaDecodeException : Exception
{
    /// <summary>The file path or source name that failed.</summary>
    public string MediaPath { get; }

    /// <summary>Creates the exception for <paramref name="source"/>.</summary>
    public MediaDecodeException(string source, string message, Exception? inner = null) : base($"{source}: {message}", inner)
    {
        MediaPath = source;
    }
}

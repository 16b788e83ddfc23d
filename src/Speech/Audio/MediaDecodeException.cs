namespace Llama3.Multimodal.Speech;

/// <summary>
/// An audio file cannot be decoded: missing, empty, truncated, malformed, an unsupported encoding, or no ffmpeg for a
/// non-WAV format. The message names the file and what was expected.
/// </summary>
public sealed class MediaDecodeException : Exception
{
    /// <summary>Creates the exception.</summary>
    public MediaDecodeException(string message, Exception? inner = null) : base(message, inner) { }
}

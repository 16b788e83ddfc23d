namespace Llama3.Multimodal.Training;

/// <summary>A malformed training-data record; the message names the manifest file and line.</summary>
public sealed class DataFormatException : Exception
{
    /// <summary>Creates the exception.</summary>
    public DataFormatException(string message, Exception? inner = null) : base(message, inner) { }
}

namespace Llama3.Multimodal.Demo;

/// <summary>A synthetic data maker or the vocabulary trainer could not do its job: a missing external tool, an
/// impossible option, or a corpus too small for the requested vocabulary. The message names what and why.</summary>
public sealed class SyntheticDataException : Exception
{
    /// <summary>Creates the exception.</summary>
    public SyntheticDataException(string message) : base(message) { }

    /// <summary>Creates the exception with its cause.</summary>
    public SyntheticDataException(string message, Exception inner) : base(message, inner) { }
}

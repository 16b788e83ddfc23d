namespace Llama3.Multimodal.Training.Distributed;

/// <summary>A collective failed, or the distributed environment is unusable.</summary>
public sealed class DistributedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public DistributedException(string message, Exception? inner = null) : base(message, inner) { }
}

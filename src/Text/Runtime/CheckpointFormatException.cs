namespace Llama3.Multimodal.Text;

/// <summary>A checkpoint file (safetensors, index, pickle) is malformed or does not match the model.</summary>
public sealed class CheckpointFormatException : Exception
{
    /// <summary>Creates the exception with a message naming the file and key.</summary>
    public CheckpointFormatException(string message, Exception? inner = null) : base(message, inner) { }
}

namespace Llama3.Multimodal.Text;

/// <summary>A tokenizer file is malformed, or input cannot be encoded as asked.</summary>
public sealed class TokenizerFormatException : Exception
{
    /// <summary>Creates the exception with a message naming the file or input.</summary>
    public TokenizerFormatException(string message, Exception? inner = null) : base(message, inner) { }
}

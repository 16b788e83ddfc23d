namespace Llama3.Multimodal.Text;

/// <summary>A model or training configuration is malformed, inconsistent or names an unknown field.</summary>
public sealed class ConfigException : Exception
{
    /// <summary>Creates the exception with a message naming the file, field and value.</summary>
    public ConfigException(string message, Exception? inner = null) : base(message, inner) { }
}

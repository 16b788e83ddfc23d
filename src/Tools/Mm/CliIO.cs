namespace Llama3.Multimodal.Tools.Mm;

/// <summary>Where a command writes.</summary>
public sealed record CliIO(TextWriter Out, TextWriter Err);

/// <summary>A user error reported as one line and exit code 2.</summary>
public sealed class CliException(string message) : Exception(message);

namespace Llama3.Multimodal.Text;

/// <summary>One turn of a dialog.</summary>
/// <param name="Role">system, user, assistant or ipython.</param>
/// <param name="Content">Text; may contain placeholders that a multimodal formatter expands (e.g. <c>&lt;|image|&gt;</c>).</param>
public sealed record ChatMessage(string Role, string Content);

namespace Llama3.Multimodal.Demo;

/// <summary>Options of <see cref="TextDataMaker"/>.</summary>
/// <param name="Documents">Number of corpus documents (each 3–8 sentences).</param>
/// <param name="Dialogs">Number of chat dialogs.</param>
/// <param name="Seed">Random seed; the same options give byte-identical files.</param>
public sealed record TextMakerOptions(int Documents, int Dialogs, int Seed = 0);

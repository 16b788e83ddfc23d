namespace Llama3.Multimodal.Speech;

/// <summary>
/// A tokenised speech prompt: <see cref="Ids"/> hold the speech start token, <see cref="SpeechLength"/> filler ids whose
/// embeddings the adapter outputs replace (starting at <see cref="SpeechOffset"/>), and the speech end token.
/// </summary>
/// <param name="Ids">Prompt token ids.</param>
/// <param name="SpeechOffset">Index of the first speech position (just after the start token).</param>
/// <param name="SpeechLength">Number of speech positions.</param>
public sealed record SpeechPrompt(IReadOnlyList<int> Ids, int SpeechOffset, int SpeechLength);

using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Video;

/// <summary>Prompt encoding for video questions: the Instruct chat format with a <c>&lt;|video|&gt;</c> placeholder, or plain completion.</summary>
public static class VideoPrompt
{
    /// <summary>Placeholder text of the video in prompts.</summary>
    public const string VideoPlaceholder = "<|video|>";

    /// <summary>
    /// Encodes a one-turn user prompt in the Instruct chat format, ending with the assistant header. Without a
    /// <c>&lt;|video|&gt;</c> placeholder in <paramref name="prompt"/>, one is put before the text; more than one is an error
    /// (one video per prompt).
    /// </summary>
    public static List<int> EncodeInstruct(Llama3Tokenizer tokenizer, string prompt, int videoTokenId = VideoConfig.DefaultVideoTokenId)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        int given = Count(prompt);
        if (given == 0) prompt = VideoPlaceholder + prompt;
        else if (given > 1) throw new ArgumentException($"the prompt holds {given} {VideoPlaceholder} placeholders; one video per prompt is supported.");
        var specials = new Dictionary<string, int> { [VideoPlaceholder] = videoTokenId };
        return new ChatFormat(tokenizer).EncodeDialog(new[] { new ChatMessage("user", prompt) }, true, specials);
    }

    /// <summary>
    /// Encodes a base-model (completion) prompt: a video at the start of the prompt comes before
    /// <c>&lt;|begin_of_text|&gt;</c> (<c>&lt;|video|&gt;&lt;|begin_of_text|&gt;text</c>, the layout the video recipe trains);
    /// one placed later stays where it is. Without a placeholder, one is put at the start.
    /// </summary>
    public static List<int> EncodeCompletion(Llama3Tokenizer tokenizer, string prompt, int videoTokenId = VideoConfig.DefaultVideoTokenId)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        int given = Count(prompt);
        if (given == 0) prompt = VideoPlaceholder + prompt;
        else if (given > 1) throw new ArgumentException($"the prompt holds {given} {VideoPlaceholder} placeholders; one video per prompt is supported.");
        return Vision.VisionPrompt.EncodeMediaFirst(tokenizer, prompt, VideoPlaceholder, videoTokenId);
    }

    /// <summary>Encodes <paramref name="prompt"/> in <paramref name="format"/>.</summary>
    public static List<int> Encode(Vision.VisionPromptFormat format, Llama3Tokenizer tokenizer, string prompt, int videoTokenId = VideoConfig.DefaultVideoTokenId) =>
        format == Vision.VisionPromptFormat.Completion ? EncodeCompletion(tokenizer, prompt, videoTokenId) : EncodeInstruct(tokenizer, prompt, videoTokenId);

    static int Count(string s) => Vision.VisionPrompt.CountOf(s, VideoPlaceholder);
}

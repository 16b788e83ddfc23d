using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Vision;

/// <summary>Prompt encoding for Llama 3.2 Vision: the Instruct chat format with <c>&lt;|image|&gt;</c> = 128256.</summary>
public static class VisionPrompt
{
    /// <summary>Placeholder text of an image in prompts.</summary>
    public const string ImagePlaceholder = "<|image|>";

    /// <summary>
    /// Encodes a one-turn user prompt in the Instruct chat format, ending with the assistant header. If
    /// <paramref name="prompt"/> holds no <c>&lt;|image|&gt;</c> placeholder, one per image is put before the text;
    /// otherwise the placeholders must number <paramref name="imageCount"/>.
    /// </summary>
    public static List<int> EncodeInstruct(Llama3Tokenizer tokenizer, string prompt, int imageCount, int imageTokenId = 128256)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        int given = CountPlaceholders(prompt);
        if (given == 0) prompt = string.Concat(Enumerable.Repeat(ImagePlaceholder, imageCount)) + prompt;
        else if (given != imageCount)
            throw new ArgumentException($"the prompt holds {given} {ImagePlaceholder} placeholders but {imageCount} images were given.");
        var specials = new Dictionary<string, int> { [ImagePlaceholder] = imageTokenId };
        return new ChatFormat(tokenizer).EncodeDialog(new[] { new ChatMessage("user", prompt) }, true, specials);
    }

    /// <summary>Encodes a base-model (completion) prompt as Meta does: <c>&lt;|begin_of_text|&gt;</c>, the images, then the text.</summary>
    public static List<int> EncodeCompletion(Llama3Tokenizer tokenizer, string prompt, int imageCount, int imageTokenId = 128256)
    {
        int given = CountPlaceholders(prompt);
        if (given == 0) prompt = string.Concat(Enumerable.Repeat(ImagePlaceholder, imageCount)) + prompt;
        else if (given != imageCount)
            throw new ArgumentException($"the prompt holds {given} {ImagePlaceholder} placeholders but {imageCount} images were given.");
        var ids = new List<int> { tokenizer.BosId };
        ids.AddRange(new ChatFormat(tokenizer).EncodeContent(prompt, new Dictionary<string, int> { [ImagePlaceholder] = imageTokenId }));
        return ids;
    }

    /// <summary>Decodes ids, writing <paramref name="imageTokenId"/> as <c>&lt;|image|&gt;</c> (or skipping it with the other specials).</summary>
    public static string Decode(Llama3Tokenizer tokenizer, IEnumerable<int> ids, bool skipSpecial = false, int imageTokenId = 128256)
    {
        var sb = new System.Text.StringBuilder();
        var run = new List<int>();
        foreach (int id in ids)
        {
            if (id == imageTokenId || id >= tokenizer.VocabSize)
            {
                sb.Append(tokenizer.Decode(run, skipSpecial));
                run.Clear();
                if (!skipSpecial) sb.Append(id == imageTokenId ? ImagePlaceholder : $"<|extra_{id}|>");
            }
            else run.Add(id);
        }
        sb.Append(tokenizer.Decode(run, skipSpecial));
        return sb.ToString();
    }

    static int CountPlaceholders(string s)
    {
        int n = 0, i = 0;
        while ((i = s.IndexOf(ImagePlaceholder, i, StringComparison.Ordinal)) >= 0) { n++; i += ImagePlaceholder.Length; }
        return n;
    }
}

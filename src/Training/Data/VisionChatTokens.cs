using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;

namespace Llama3.Multimodal.Training;

/// <summary>
/// The Llama 3.2 Vision Instruct chat format over any <see cref="ITrainingTokenizer"/>, with a per-token flag marking
/// the assistant tokens a recipe trains on. Message contents hold <c>&lt;|image|&gt;</c> placeholders where the images
/// go. For the Llama 3 tokenizer the ids are those of <see cref="VisionPrompt.EncodeDialog"/> (the formatter inference
/// uses: the chat client, <c>mm vision-generate</c>, the server), message by message through the same
/// <see cref="ChatFormat"/> calls; the byte tokenizer of tiny models follows the same layout.
/// </summary>
public static class VisionChatTokens
{
    /// <summary>Header ids of <paramref name="role"/>: <c>&lt;|start_header_id|&gt;role&lt;|end_header_id|&gt;\n\n</c>.</summary>
    public static List<int> Header(ITrainingTokenizer t, string role) =>
        t is Llama3TrainingTokenizer l ? new ChatFormat(l.Inner).EncodeHeader(role) : ChatTokens.Header(t, role);

    /// <summary>Content ids: the stripped text, each <c>&lt;|image|&gt;</c> placeholder as <paramref name="imageTokenId"/> (no text added around it).</summary>
    public static List<int> Content(ITrainingTokenizer t, string content, int imageTokenId)
    {
        if (t is Llama3TrainingTokenizer l) return new ChatFormat(l.Inner).EncodeContent(content.Trim(), VisionPrompt.Placeholders(imageTokenId));
        var ids = new List<int>();
        var pieces = content.Trim().Split(VisionPrompt.ImagePlaceholder);
        for (int i = 0; i < pieces.Length; i++)
        {
            if (i > 0) ids.Add(imageTokenId);
            ids.AddRange(t.Encode(pieces[i]));
        }
        return ids;
    }

    /// <summary>
    /// Dialog ids (<c>&lt;|begin_of_text|&gt;</c>, then header · content · <c>&lt;|eot_id|&gt;</c> per message) and the
    /// assistant mask: true on each assistant message's content tokens and its <c>&lt;|eot_id|&gt;</c> (so that the model
    /// learns to end its turn), false on the begin token, every header and every other message.
    /// </summary>
    public static (List<int> Ids, List<bool> Assistant) Dialog(ITrainingTokenizer t, IReadOnlyList<ChatMessage> messages, int imageTokenId)
    {
        var ids = new List<int> { t.BosId };
        var mask = new List<bool> { false };
        foreach (var m in messages)
        {
            var h = Header(t, m.Role);
            ids.AddRange(h); mask.AddRange(Enumerable.Repeat(false, h.Count));
            var c = Content(t, m.Content, imageTokenId);
            c.Add(t.EotId);
            ids.AddRange(c); mask.AddRange(Enumerable.Repeat(m.Role == "assistant", c.Count));
        }
        return (ids, mask);
    }

    /// <summary>Prompt ids ending with the assistant header (what generation continues).</summary>
    public static List<int> Prompt(ITrainingTokenizer t, IReadOnlyList<ChatMessage> messages, int imageTokenId)
    {
        var (ids, _) = Dialog(t, messages, imageTokenId);
        ids.AddRange(Header(t, "assistant"));
        return ids;
    }

    /// <summary>A response: its stripped content then <c>&lt;|eot_id|&gt;</c>.</summary>
    public static List<int> Response(ITrainingTokenizer t, string content) => ChatTokens.Response(t, content);

    /// <summary>
    /// Ids and next-token labels of a dialog truncated to <paramref name="seqLen"/>: <c>labels[i] = ids[i+1]</c> where
    /// token i+1 is an assistant token, −100 elsewhere.
    /// </summary>
    public static (long[] Ids, long[] Labels) Encode(ITrainingTokenizer t, IReadOnlyList<ChatMessage> messages, int imageTokenId, int seqLen)
    {
        var (ids, mask) = Dialog(t, messages, imageTokenId);
        int len = Math.Min(ids.Count, seqLen);
        return (ids.Take(len).Select(i => (long)i).ToArray(), PreferenceLosses.ShiftedLabels(ids, mask, len));
    }
}

using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Training;

/// <summary>
/// Llama 3 chat format over any <see cref="ITrainingTokenizer"/> (same ids as <c>ChatFormat</c> for the Llama 3
/// tokenizer), with a per-token flag marking assistant response tokens (content and its <c>&lt;|eot_id|&gt;</c>).
/// </summary>
internal static class ChatTokens
{
    public static List<int> Header(ITrainingTokenizer t, string role)
    {
        var ids = new List<int> { t.StartHeaderId };
        ids.AddRange(t.Encode(role));
        ids.Add(t.EndHeaderId);
        ids.AddRange(t.Encode("\n\n"));
        return ids;
    }

    /// <summary>Dialog ids and the assistant-token mask.</summary>
    public static (List<int> Ids, List<bool> Assistant) Dialog(ITrainingTokenizer t, IReadOnlyList<ChatMessage> messages)
    {
        var ids = new List<int> { t.BosId };
        var mask = new List<bool> { false };
        foreach (var m in messages)
        {
            var h = Header(t, m.Role);
            ids.AddRange(h); mask.AddRange(Enumerable.Repeat(false, h.Count));
            var c = t.Encode(m.Content.Trim());
            c.Add(t.EotId);
            bool a = m.Role == "assistant";
            ids.AddRange(c); mask.AddRange(Enumerable.Repeat(a, c.Count));
        }
        return (ids, mask);
    }

    /// <summary>Prompt ids ending with the assistant header.</summary>
    public static List<int> Prompt(ITrainingTokenizer t, IReadOnlyList<ChatMessage> messages)
    {
        var (ids, _) = Dialog(t, messages);
        ids.AddRange(Header(t, "assistant"));
        return ids;
    }

    /// <summary>A response: content then <c>&lt;|eot_id|&gt;</c>.</summary>
    public static List<int> Response(ITrainingTokenizer t, string content)
    {
        var c = t.Encode(content.Trim());
        c.Add(t.EotId);
        return c;
    }
}

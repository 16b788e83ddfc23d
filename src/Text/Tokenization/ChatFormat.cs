namespace Llama3.Multimodal.Text;

/// <summary>
/// Llama 3 chat format: <c>&lt;|begin_of_text|&gt;</c>, then per message
/// <c>&lt;|start_header_id|&gt;{role}&lt;|end_header_id|&gt;\n\n{content.strip()}&lt;|eot_id|&gt;</c>; a prompt for a reply ends with the
/// assistant header. Special-token text inside content is plain text; only this formatter inserts specials
/// (multimodal formatters pass the placeholders they own through <c>allowedSpecials</c>).
/// </summary>
public sealed class ChatFormat
{
    static readonly HashSet<string> Roles = new(StringComparer.Ordinal) { "system", "user", "assistant", "ipython" };
    readonly Llama3Tokenizer _tok;

    /// <summary>Creates the formatter.</summary>
    public ChatFormat(Llama3Tokenizer tokenizer) => _tok = tokenizer;

    /// <summary>Header tokens for <paramref name="role"/>.</summary>
    public List<int> EncodeHeader(string role)
    {
        if (!Roles.Contains(role)) throw new ArgumentException($"unknown chat role '{role}' (system, user, assistant, ipython).");
        var ids = new List<int> { _tok.StartHeaderId };
        ids.AddRange(_tok.Encode(role));
        ids.Add(_tok.EndHeaderId);
        ids.AddRange(_tok.Encode("\n\n"));
        return ids;
    }

    /// <summary>One message: header, stripped content, <c>&lt;|eot_id|&gt;</c>.</summary>
    public List<int> EncodeMessage(ChatMessage m, IReadOnlyDictionary<string, int>? allowedSpecials = null)
    {
        var ids = EncodeHeader(m.Role);
        ids.AddRange(EncodeContent(m.Content.Trim(), allowedSpecials));
        ids.Add(_tok.EotId);
        return ids;
    }

    /// <summary>Encodes content where only the given placeholder strings become their special ids.</summary>
    public List<int> EncodeContent(string content, IReadOnlyDictionary<string, int>? allowedSpecials)
    {
        if (allowedSpecials is null || allowedSpecials.Count == 0) return _tok.Encode(content);
        var ids = new List<int>();
        int pos = 0;
        while (pos <= content.Length)
        {
            int best = -1; string? which = null;
            foreach (var k in allowedSpecials.Keys)
            {
                int i = content.IndexOf(k, pos, StringComparison.Ordinal);
                if (i >= 0 && (best < 0 || i < best)) { best = i; which = k; }
            }
            if (best < 0) { ids.AddRange(_tok.Encode(content[pos..])); break; }
            ids.AddRange(_tok.Encode(content[pos..best]));
            ids.Add(allowedSpecials[which!]);
            pos = best + which!.Length;
        }
        return ids;
    }

    /// <summary>A dialog prompt; with <paramref name="addAssistantHeader"/> it ends with the assistant header, ready for generation.</summary>
    public List<int> EncodeDialog(IEnumerable<ChatMessage> messages, bool addAssistantHeader = true, IReadOnlyDictionary<string, int>? allowedSpecials = null)
    {
        var ids = new List<int> { _tok.BosId };
        foreach (var m in messages) ids.AddRange(EncodeMessage(m, allowedSpecials));
        if (addAssistantHeader) ids.AddRange(EncodeHeader("assistant"));
        return ids;
    }
}

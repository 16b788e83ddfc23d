using System.Text;

namespace Llama3.Multimodal.Text;

/// <summary>
/// Turns a stream of token ids into text pieces, holding back bytes of an incomplete UTF-8 character (a token may
/// carry half of an emoji) until the rest arrives.
/// </summary>
public sealed class StreamingDecoder
{
    readonly Llama3Tokenizer _tok;
    readonly bool _skipSpecial;
    readonly Decoder _utf8 = new UTF8Encoding(false, false).GetDecoder();

    internal StreamingDecoder(Llama3Tokenizer tok, bool skipSpecial) { _tok = tok; _skipSpecial = skipSpecial; }

    /// <summary>Adds one token; returns the text that became complete (possibly empty).</summary>
    public string Push(int id)
    {
        if (_skipSpecial && _tok.IsSpecial(id)) return "";
        byte[] b = _tok.TokenBytes(id);
        var chars = new char[b.Length + 4];
        int n = _utf8.GetChars(b, 0, b.Length, chars, 0, flush: false);
        return new string(chars, 0, n);
    }

    /// <summary>Flushes any held-back bytes (as U+FFFD if incomplete).</summary>
    public string Flush()
    {
        var chars = new char[8];
        int n = _utf8.GetChars(Array.Empty<byte>(), 0, 0, chars, 0, flush: true);
        return new string(chars, 0, n);
    }
}

namespace Llama3.Multimodal.Server;

/// <summary>
/// Cuts streamed text at the first of a request's stop sequences (which is not returned), holding back any tail that
/// could still become one.
/// </summary>
public sealed class StopSequenceFilter
{
    readonly string[] _stops;
    readonly int _hold;
    readonly System.Text.StringBuilder _text = new();
    int _emitted;

    /// <summary>Creates the filter (empty sequences are ignored).</summary>
    public StopSequenceFilter(IEnumerable<string>? stops)
    {
        _stops = (stops ?? Array.Empty<string>()).Where(s => !string.IsNullOrEmpty(s)).ToArray();
        _hold = _stops.Length == 0 ? 0 : _stops.Max(s => s.Length) - 1;
    }

    /// <summary>True once a stop sequence was seen; later text is dropped.</summary>
    public bool Stopped { get; private set; }

    /// <summary>All text let through so far.</summary>
    public string Text => _text.ToString(0, _emitted);

    /// <summary>Adds <paramref name="piece"/>; returns the text that is now safe to emit.</summary>
    public string Push(string piece)
    {
        if (Stopped || piece.Length == 0) return "";
        int from = Math.Max(0, _text.Length - _hold);
        _text.Append(piece);
        if (_stops.Length == 0) return Take(_text.Length);
        string window = _text.ToString(from, _text.Length - from);
        int cut = -1;
        foreach (var s in _stops)
        {
            int i = window.IndexOf(s, StringComparison.Ordinal);
            if (i >= 0 && (cut < 0 || from + i < cut)) cut = from + i;
        }
        if (cut >= 0)
        {
            Stopped = true;
            _text.Length = cut;
            return Take(cut);
        }
        return Take(Math.Max(_emitted, _text.Length - _hold));
    }

    /// <summary>At the end of generation: the held-back tail (no stop sequence completed).</summary>
    public string Flush() => Stopped ? "" : Take(_text.Length);

    string Take(int upTo)
    {
        if (upTo <= _emitted) return "";
        string s = _text.ToString(_emitted, upTo - _emitted);
        _emitted = upTo;
        return s;
    }
}

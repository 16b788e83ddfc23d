namespace Llama3.Multimodal.Training;

/// <summary>The tokenizer a recipe trains with: plain text encoding plus the chat-format special ids.</summary>
public interface ITrainingTokenizer
{
    /// <summary>Ids the model needs (vocabulary size including specials).</summary>
    int VocabSize { get; }
    /// <summary><c>&lt;|begin_of_text|&gt;</c>.</summary>
    int BosId { get; }
    /// <summary><c>&lt;|end_of_text|&gt;</c>.</summary>
    int EosId { get; }
    /// <summary>Padding id.</summary>
    int PadId { get; }
    /// <summary><c>&lt;|start_header_id|&gt;</c>.</summary>
    int StartHeaderId { get; }
    /// <summary><c>&lt;|end_header_id|&gt;</c>.</summary>
    int EndHeaderId { get; }
    /// <summary><c>&lt;|eot_id|&gt;</c>.</summary>
    int EotId { get; }
    /// <summary>Encodes plain text (special-token text stays ordinary text).</summary>
    List<int> Encode(string text);
    /// <summary>True for special ids.</summary>
    bool IsSpecial(int id);
    /// <summary>Decodes ids to text, dropping special tokens.</summary>
    string Decode(IEnumerable<int> ids);
}

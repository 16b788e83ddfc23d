using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Training;

/// <summary>The Llama 3 tokenizer seen through <see cref="ITrainingTokenizer"/>.</summary>
public sealed class Llama3TrainingTokenizer : ITrainingTokenizer
{
    /// <summary>Wraps <paramref name="tokenizer"/>.</summary>
    public Llama3TrainingTokenizer(Llama3Tokenizer tokenizer) => Inner = tokenizer;
    /// <summary>The wrapped tokenizer.</summary>
    public Llama3Tokenizer Inner { get; }
    /// <inheritdoc/>
    public int VocabSize => Inner.VocabSize;
    /// <inheritdoc/>
    public int BosId => Inner.BosId;
    /// <inheritdoc/>
    public int EosId => Inner.EosId;
    /// <inheritdoc/>
    public int PadId => Inner.PadId;
    /// <inheritdoc/>
    public int StartHeaderId => Inner.StartHeaderId;
    /// <inheritdoc/>
    public int EndHeaderId => Inner.EndHeaderId;
    /// <inheritdoc/>
    public int EotId => Inner.EotId;
    /// <inheritdoc/>
    public List<int> Encode(string text) => Inner.Encode(text);
    /// <inheritdoc/>
    public bool IsSpecial(int id) => Inner.IsSpecial(id);
    /// <inheritdoc/>
    public string Decode(IEnumerable<int> ids) => Inner.Decode(ids, skipSpecial: true);

    /// <summary>Resolves a config's <c>tokenizer</c> value: <c>llama3</c>, <c>bytes</c> or a path to a tiktoken/HF tokenizer file.</summary>
    public static ITrainingTokenizer Resolve(string name) => name switch
    {
        "bytes" => ByteTokenizer.Instance,
        "llama3" or "" => new Llama3TrainingTokenizer(Llama3Tokenizer.Default),
        _ => File.Exists(name) ? new Llama3TrainingTokenizer(Llama3Tokenizer.FromFile(name))
            : throw new ConfigException($"tokenizer '{name}': not 'llama3', 'bytes' or an existing tokenizer file."),
    };
}

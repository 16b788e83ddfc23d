using System.Text;

namespace Llama3.Multimodal.Training;

/// <summary>
/// UTF-8 bytes as ids 0–255, then 8 specials: 256 begin_of_text, 257 end_of_text, 258 pad, 259 start_header,
/// 260 end_header, 261 eot, 262–263 reserved. For tiny models and tests (a 264-row vocabulary).
/// </summary>
public sealed class ByteTokenizer : ITrainingTokenizer
{
    /// <summary>The shared instance.</summary>
    public static ByteTokenizer Instance { get; } = new();
    /// <inheritdoc/>
    public int VocabSize => 264;
    /// <inheritdoc/>
    public int BosId => 256;
    /// <inheritdoc/>
    public int EosId => 257;
    /// <inheritdoc/>
    public int PadId => 258;
    /// <inheritdoc/>
    public int StartHeaderId => 259;
    /// <inheritdoc/>
    public int EndHeaderId => 260;
    /// <inheritdoc/>
    public int EotId => 261;
    /// <inheritdoc/>
    public List<int> Encode(string text) => Encoding.UTF8.GetBytes(text).Select(b => (int)b).ToList();
    /// <inheritdoc/>
    public bool IsSpecial(int id) => id >= 256;
    /// <inheritdoc/>
    public string Decode(IEnumerable<int> ids) => Encoding.UTF8.GetString(ids.Where(i => i < 256).Select(i => (byte)i).ToArray());
}

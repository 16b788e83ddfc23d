namespace Llama3.Multimodal.Demo;

/// <summary>Options of <see cref="SpeechDataMaker"/>. A voice is an espeak-ng voice plus an optional variant
/// (<c>en-gb+f2</c>); the voice pool is every base × every variant ("" = no variant).</summary>
/// <param name="Count">Number of utterances.</param>
/// <param name="Seed">Random seed; the same options give byte-identical files.</param>
/// <param name="Voices">Base voices; null = <see cref="DefaultVoices"/> (eight English accents).</param>
/// <param name="Variants">Variants; null = <see cref="DefaultVariants"/> (none, seven male, five female, three klatt).</param>
/// <param name="Speeds">Speeds in words per minute; null = 120, 130, …, 220.</param>
/// <param name="Pitches">Pitches 0…99; null = 30, 40, 50, 60, 70.</param>
/// <param name="HeldOutVoices">Held-out voices: an entry matches a full voice (<c>en-gb+f2</c>) or a base (<c>en-029</c>).</param>
/// <param name="HeldOutSpeeds">Held-out speeds (must be in <paramref name="Speeds"/>).</param>
/// <param name="Mode">Exclude: never a held-out voice or speed. Only: a held-out voice (if any are listed) and a
/// held-out speed (if any are listed).</param>
/// <param name="MaxParallelism">Synthesis processes at once (sampling is sequential, so output does not depend on it).</param>
public sealed record SpeechMakerOptions(
    int Count, int Seed = 0, IReadOnlyList<string>? Voices = null, IReadOnlyList<string>? Variants = null,
    IReadOnlyList<int>? Speeds = null, IReadOnlyList<int>? Pitches = null, IReadOnlyList<string>? HeldOutVoices = null,
    IReadOnlyList<int>? HeldOutSpeeds = null, HeldOutMode Mode = HeldOutMode.All, int MaxParallelism = 2)
{
    /// <summary>Default base voices.</summary>
    public static readonly IReadOnlyList<string> DefaultVoices = new[] { "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc" };
    /// <summary>Default variants.</summary>
    public static readonly IReadOnlyList<string> DefaultVariants = new[] { "", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+f1", "+f2", "+f3", "+f4", "+f5", "+klatt", "+klatt2", "+klatt3" };
    /// <summary>Default speeds (words per minute).</summary>
    public static readonly IReadOnlyList<int> DefaultSpeeds = new[] { 120, 130, 140, 150, 160, 170, 180, 190, 200, 210, 220 };
    /// <summary>Default pitches.</summary>
    public static readonly IReadOnlyList<int> DefaultPitches = new[] { 30, 40, 50, 60, 70 };
}

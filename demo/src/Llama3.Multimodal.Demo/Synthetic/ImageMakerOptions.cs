namespace Llama3.Multimodal.Demo;

/// <summary>Options of <see cref="ImageDataMaker"/>.</summary>
/// <param name="Count">Number of images.</param>
/// <param name="Seed">Random seed; the same options give byte-identical files.</param>
/// <param name="Size">Square image side in pixels (e.g. 64 or 112; at least 32).</param>
/// <param name="HeldOut">Colour+shape combinations to hold out (e.g. "green triangle").</param>
/// <param name="Mode">What to do with <paramref name="HeldOut"/>: Exclude for training sets, Only for held-out evaluation sets.</param>
/// <param name="Kinds">Scene kinds to make (single, count, overlap, word, number); null = all, weighted 40/20/20/12/8 %.
/// With <see cref="HeldOutMode.Only"/>, word and number scenes are never made (they have no colour+shape).</param>
/// <param name="MaxParallelism">Rendering threads (sampling is sequential, so output does not depend on it).</param>
public sealed record ImageMakerOptions(
    int Count, int Seed = 0, int Size = 64, IReadOnlyList<ColourShape>? HeldOut = null, HeldOutMode Mode = HeldOutMode.All,
    IReadOnlyList<string>? Kinds = null, int MaxParallelism = 2);

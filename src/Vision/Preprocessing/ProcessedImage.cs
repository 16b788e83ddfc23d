using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision;

/// <summary>One preprocessed image: its tiles and tile grid.</summary>
public sealed class ProcessedImage : IDisposable
{
    /// <summary>Normalised tiles [h·w, 3, T, T] f32 in row-major tile order (slot = r·w + c), on the CPU.</summary>
    public required Tensor Tiles { get; init; }
    /// <summary>Tile grid (tiles high, tiles wide).</summary>
    public required (int H, int W) Grid { get; init; }
    /// <summary>1 + index of <see cref="Grid"/> in the supported aspect ratios.</summary>
    public required int AspectRatioId { get; init; }
    /// <summary>Size of the image after the aspect-preserving resize (before padding), (height, width).</summary>
    public required (int H, int W) Resized { get; init; }
    /// <summary>Number of tiles (h·w).</summary>
    public int NumTiles => Grid.H * Grid.W;

    /// <inheritdoc/>
    public void Dispose() => Tiles.Dispose();
}

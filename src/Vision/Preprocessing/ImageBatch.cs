using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision;

/// <summary>
/// Model inputs for a batch of prompts with possibly different numbers of images (HF <c>MllamaImageProcessor</c> output).
/// Missing tiles and missing images are 0.0.
/// </summary>
public sealed class ImageBatch : IDisposable
{
    /// <summary>[B, max_images, max_tiles, 3, T, T] f32.</summary>
    public required Tensor PixelValues { get; init; }
    /// <summary>[B, max_images] int64: aspect-ratio id per image, 0 for a missing image.</summary>
    public required Tensor AspectRatioIds { get; init; }
    /// <summary>[B, max_images, max_tiles] int64: 1 for the image's real tiles; tile 0 is always 1.</summary>
    public required Tensor AspectRatioMask { get; init; }
    /// <summary>Tiles of each image per prompt (h·w).</summary>
    public required IReadOnlyList<IReadOnlyList<int>> NumTiles { get; init; }
    /// <summary>Batch size.</summary>
    public int BatchSize => NumTiles.Count;
    /// <summary>Largest number of images in one prompt.</summary>
    public int MaxImages => NumTiles.Count == 0 ? 0 : NumTiles.Max(r => r.Count);

    /// <inheritdoc/>
    public void Dispose()
    {
        PixelValues.Dispose(); AspectRatioIds.Dispose(); AspectRatioMask.Dispose();
    }
}

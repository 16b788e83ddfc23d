using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision;

/// <summary>
/// Llama 3.2 Vision image preprocessing (HF <c>MllamaImageProcessor</c>, Meta <c>VariableSizeImageTransform</c>): choose
/// the tile canvas, resize keeping the aspect ratio with Pillow's bilinear filter, pad right/bottom with black, rescale by
/// 1/255, normalise with the CLIP mean/std, split into tiles, and pack batches with aspect-ratio ids and masks.
/// </summary>
public sealed class ImagePreprocessor
{
    /// <summary>CLIP channel means.</summary>
    public static readonly double[] Mean = { 0.48145466, 0.4578275, 0.40821073 };
    /// <summary>CLIP channel standard deviations.</summary>
    public static readonly double[] Std = { 0.26862954, 0.26130258, 0.27577711 };
    /// <summary>Rescale factor (1/255, as HF stores it).</summary>
    public const double RescaleFactor = 0.00392156862745098;

    readonly float[][] _table;

    /// <summary>Tile side in pixels.</summary>
    public int TileSize { get; }
    /// <summary>Most tiles per image.</summary>
    public int MaxTiles { get; }
    /// <summary>Supported grids (tiles high, tiles wide).</summary>
    public IReadOnlyList<(int H, int W)> AspectRatios { get; }

    /// <summary>Creates the preprocessor for a vision config.</summary>
    public ImagePreprocessor(VisionConfig config) : this(config.ImageSize, config.MaxNumTiles, config.SupportedAspectRatios) { }

    /// <summary>Creates the preprocessor for tiles of <paramref name="tileSize"/> and up to <paramref name="maxTiles"/> tiles.</summary>
    public ImagePreprocessor(int tileSize, int maxTiles = 4, IReadOnlyList<(int H, int W)>? aspectRatios = null)
    {
        if (tileSize <= 0) throw new ArgumentException($"tile size {tileSize} must be positive.");
        if (maxTiles <= 0) throw new ArgumentException($"max tiles {maxTiles} must be positive.");
        TileSize = tileSize; MaxTiles = maxTiles;
        AspectRatios = aspectRatios ?? VisionConfig.AspectRatiosFor(maxTiles);
        _table = new float[3][];
        for (int c = 0; c < 3; c++)
        {
            _table[c] = new float[256];
            for (int v = 0; v < 256; v++) _table[c][v] = NormalizedValue(v, c);
        }
    }

    /// <summary>
    /// The model input value of 8-bit value <paramref name="v"/> in channel <paramref name="channel"/>, computed as HF does:
    /// rescale in f64 then cast to f32, then <c>(x − mean) / std</c> in f32.
    /// </summary>
    public static float NormalizedValue(int v, int channel)
    {
        float x = (float)(v * RescaleFactor);
        float m = (float)Mean[channel], s = (float)Std[channel];
        return (x - m) / s;
    }

    /// <summary>
    /// Best tile grid for an image of <paramref name="height"/>×<paramref name="width"/>: per grid the scale
    /// min(h·T/H, w·T/W); the smallest scale ≥ 1 if any (least upscaling), else the largest (least downscaling); ties go
    /// to the smallest canvas area.
    /// </summary>
    public static (int H, int W) ChooseGrid(int height, int width, int tile, IReadOnlyList<(int H, int W)> aspectRatios)
    {
        if (height <= 0 || width <= 0) throw new ArgumentException($"image size {width}x{height} must be positive.");
        var scales = aspectRatios.Select(a => Math.Min((double)(a.H * tile) / height, (double)(a.W * tile) / width)).ToArray();
        var up = scales.Where(s => s >= 1).ToArray();
        double chosen = up.Length > 0 ? up.Min() : scales.Max();
        (int, int) best = default;
        long bestArea = long.MaxValue;
        for (int i = 0; i < aspectRatios.Count; i++)
        {
            if (scales[i] != chosen) continue;
            long area = (long)aspectRatios[i].H * tile * aspectRatios[i].W * tile;
            if (area < bestArea) { bestArea = area; best = aspectRatios[i]; }
        }
        return best;
    }

    /// <summary>
    /// Resize target (height, width) inside a canvas: each side clamped to [tile, canvas side], aspect ratio kept with
    /// floor (HF <c>get_image_size_fit_to_canvas</c>).
    /// </summary>
    public static (int H, int W) FitToCanvas(int height, int width, int tile, int canvasHeight, int canvasWidth)
    {
        int targetW = Math.Clamp(width, tile, canvasWidth);
        int targetH = Math.Clamp(height, tile, canvasHeight);
        double sh = (double)targetH / height, sw = (double)targetW / width;
        if (sw < sh)
        {
            int newH = (int)Math.Floor(height * sw);
            return (Math.Min(newH == 0 ? 1 : newH, targetH), targetW);
        }
        int newW = (int)Math.Floor(width * sh);
        return (targetH, Math.Min(newW == 0 ? 1 : newW, targetW));
    }

    /// <summary>Preprocesses one image.</summary>
    public ProcessedImage Process(RgbImage image)
    {
        var grid = ChooseGrid(image.Height, image.Width, TileSize, AspectRatios);
        int canvasH = grid.H * TileSize, canvasW = grid.W * TileSize;
        var (rh, rw) = FitToCanvas(image.Height, image.Width, TileSize, canvasH, canvasW);
        var resized = PilBilinear.Resize(image, rw, rh);
        int t = TileSize, n = grid.H * grid.W;
        long tilePlane = (long)t * t;
        var data = new float[n * 3 * tilePlane];
        var px = resized.Pixels;
        var table = _table;
        Parallel.For(0, canvasH, y =>
        {
            int tr = y / t, yy = y % t;
            for (int x = 0; x < canvasW; x++)
            {
                int tc = x / t, xx = x % t;
                long baseIdx = (long)(tr * grid.W + tc) * 3 * tilePlane + (long)yy * t + xx;
                bool inside = y < rh && x < rw;
                int p = inside ? (y * rw + x) * 3 : 0;
                for (int c = 0; c < 3; c++)
                    data[baseIdx + c * tilePlane] = table[c][inside ? px[p + c] : 0];
            }
        });
        var tiles = torch.tensor(data, new long[] { n, 3, t, t });
        return new ProcessedImage
        {
            Tiles = tiles,
            Grid = grid,
            AspectRatioId = AspectRatioId(grid),
            Resized = (rh, rw),
        };
    }

    /// <summary>1 + index of <paramref name="grid"/> among the supported aspect ratios.</summary>
    public int AspectRatioId((int H, int W) grid)
    {
        for (int i = 0; i < AspectRatios.Count; i++) if (AspectRatios[i] == grid) return i + 1;
        throw new ArgumentException($"tile grid {grid.H}x{grid.W} is not a supported aspect ratio.");
    }

    /// <summary>Preprocesses and packs a batch: images per prompt (a prompt may have none).</summary>
    public ImageBatch Batch(IReadOnlyList<IReadOnlyList<RgbImage>> images)
    {
        var processed = images.Select(row => row.Select(Process).ToList()).ToList();
        try { return Pack(processed); }
        finally { foreach (var row in processed) foreach (var p in row) p.Dispose(); }
    }

    /// <summary>Packs already processed images (the caller keeps ownership of them).</summary>
    public ImageBatch Pack(IReadOnlyList<IReadOnlyList<ProcessedImage>> rows)
    {
        int b = rows.Count;
        int maxImages = b == 0 ? 0 : rows.Max(r => r.Count);
        int t = TileSize;
        using var scope = torch.NewDisposeScope();
        var pixels = torch.zeros(new long[] { b, maxImages, MaxTiles, 3, t, t }, ScalarType.Float32);
        var ids = new long[b * maxImages];
        var mask = new long[b * maxImages * MaxTiles];
        using (torch.no_grad())
        {
            for (int r = 0; r < b; r++)
                for (int i = 0; i < maxImages; i++)
                {
                    mask[(r * maxImages + i) * MaxTiles] = 1;
                    if (i >= rows[r].Count) continue;
                    var p = rows[r][i];
                    if (p.NumTiles > MaxTiles) throw new ArgumentException($"image has {p.NumTiles} tiles, more than {MaxTiles}.");
                    pixels[r, i].narrow(0, 0, p.NumTiles).copy_(p.Tiles);
                    ids[r * maxImages + i] = p.AspectRatioId;
                    for (int k = 0; k < p.NumTiles; k++) mask[(r * maxImages + i) * MaxTiles + k] = 1;
                }
        }
        return new ImageBatch
        {
            PixelValues = pixels.MoveToOuterDisposeScope(),
            AspectRatioIds = torch.tensor(ids, new long[] { b, maxImages }).MoveToOuterDisposeScope(),
            AspectRatioMask = torch.tensor(mask, new long[] { b, maxImages, MaxTiles }).MoveToOuterDisposeScope(),
            NumTiles = rows.Select(r => (IReadOnlyList<int>)r.Select(p => p.NumTiles).ToList()).ToList(),
        };
    }
}

using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Video;

/// <summary>Frames sampled from a clip: RGB pixels plus where they came from. Owns <see cref="Pixels"/>.</summary>
public sealed class VideoFrames : IDisposable
{
    /// <summary>RGB pixels [N, H, W, 3] uint8 on the CPU, frames in clip order.</summary>
    public Tensor Pixels { get; }
    /// <summary>Source frame index of each of the N frames (non-decreasing; repeats for short clips).</summary>
    public IReadOnlyList<int> FrameIndices { get; }
    /// <summary>The probed stream.</summary>
    public VideoInfo Info { get; }

    /// <summary>Number of frames N.</summary>
    public int Count => FrameIndices.Count;
    /// <summary>Frame height H in pixels.</summary>
    public int Height => (int)Pixels.shape[1];
    /// <summary>Frame width W in pixels.</summary>
    public int Width => (int)Pixels.shape[2];

    /// <summary>Wraps decoded pixels; takes ownership of <paramref name="pixels"/>.</summary>
    public VideoFrames(Tensor pixels, IReadOnlyList<int> frameIndices, VideoInfo info)
    {
        if (pixels.dim() != 4 || pixels.shape[3] != 3 || pixels.shape[0] != frameIndices.Count)
            throw new ArgumentException($"pixels must be [N={frameIndices.Count}, H, W, 3]; got [{string.Join(", ", pixels.shape)}].");
        Pixels = pixels;
        FrameIndices = frameIndices;
        Info = info;
    }

    /// <summary>Approximate time in seconds of frame <paramref name="i"/> (source index ÷ average frame rate).</summary>
    public double TimeSeconds(int i) => Info.FrameRate > 0 ? FrameIndices[i] / Info.FrameRate : 0;

    /// <summary>
    /// Frames as f32 [N, 3, H, W] rescaled by 1/255 and normalised with <paramref name="mean"/>/<paramref name="std"/>
    /// per channel (the CLIP values of the image encoder when null), on <paramref name="device"/>.
    /// </summary>
    public Tensor ToNormalized(Device? device = null, IReadOnlyList<double>? mean = null, IReadOnlyList<double>? std = null)
    {
        mean ??= ClipMean; std ??= ClipStd;
        using var scope = NewDisposeScope();
        var x = Pixels.to(device ?? CPU).permute(0, 3, 1, 2).to_type(ScalarType.Float32).div_(Scale255);      // [N, 3, H, W]
        var m = torch.tensor(mean.Select(v => (float)v).ToArray(), device: x.device).view(1, 3, 1, 1);
        var s = torch.tensor(std.Select(v => (float)v).ToArray(), device: x.device).view(1, 3, 1, 1);
        return ((x - m) / s).MoveToOuterDisposeScope();
    }

    static readonly Scalar Scale255 = 255.0.ToScalar();

    /// <summary>CLIP normalisation mean (HF preprocessor_config.json <c>image_mean</c>).</summary>
    public static IReadOnlyList<double> ClipMean { get; } = new[] { 0.48145466, 0.4578275, 0.40821073 };
    /// <summary>CLIP normalisation standard deviation (HF preprocessor_config.json <c>image_std</c>).</summary>
    public static IReadOnlyList<double> ClipStd { get; } = new[] { 0.26862954, 0.26130258, 0.27577711 };

    /// <inheritdoc/>
    public void Dispose() => Pixels.Dispose();
}

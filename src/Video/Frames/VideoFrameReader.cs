using System.Globalization;
using System.Text;
using Llama3.Multimodal.Vision;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Video;

/// <summary>
/// Samples N frames uniformly over a clip and decodes exactly those frames to RGB with one ffmpeg process: a
/// <c>select</c> filter keeps the chosen decoded frames, which are scaled and piped out as raw rgb24 (no temporary
/// files). Frame numbers count decoded frames, so variable-frame-rate clips sample evenly by frame; ffmpeg applies the
/// display-matrix rotation of phone videos before scaling.
/// </summary>
public static class VideoFrameReader
{
    /// <summary>
    /// Reads <see cref="FrameSamplingOptions.NumFrames"/> frames of <paramref name="path"/> as RGB uint8
    /// [N, H, W, 3]. Throws <see cref="MediaDecodeException"/> naming the file when it is missing, empty, unreadable,
    /// has no video stream, or ffmpeg is not installed.
    /// </summary>
    public static VideoFrames Read(string path, FrameSamplingOptions? options = null)
    {
        options = (options ?? new FrameSamplingOptions()).Validate();
        VideoProbe.CheckFile(path);
        var tools = FfmpegTools.Locate(options.FfmpegDirectory, path);
        var info = VideoProbe.Probe(path, tools, countDecodedFrames: false);
        var frames = TryRead(path, tools, info, options);
        if (frames is not null) return frames;
        // Packets and decoded frames differ (edit lists, hidden frames): count decoded frames and sample again.
        var exact = VideoProbe.Probe(path, tools, countDecodedFrames: true);
        return TryRead(path, tools, exact, options)
            ?? throw new MediaDecodeException(path, $"ffmpeg decoded fewer frames than the {exact.FrameCount} it counted; the stream may be damaged.");
    }

    /// <summary>Decodes the sampled frames, or returns null when the decoder produced fewer frames than probed.</summary>
    static VideoFrames? TryRead(string path, FfmpegTools tools, VideoInfo info, FrameSamplingOptions o)
    {
        int[] indices = FrameSampler.UniformIndices(info.FrameCount, o.NumFrames);
        int[] unique = indices.Distinct().OrderBy(i => i).ToArray();
        int w = o.Width ?? info.DisplayWidth, h = o.Height ?? info.DisplayHeight;
        int frameBytes = checked(w * h * 3);
        // Frames are read straight into the tensor's memory, one frame at a time: no second copy of the clip.
        var decoded = torch.empty(new long[] { unique.Length, h, w, 3 }, ScalarType.Byte);
        int got = 0;
        var args = new List<string>
        {
            "-v", "error", "-nostdin", "-i", path, "-map", $"0:{info.StreamIndex}", "-an", "-sn", "-dn",
            "-vf", Filter(unique, w, h, o.Width.HasValue ? o.Resize : FrameResize.Stretch),
            // -vsync rather than -fps_mode: ffmpeg 4.x (still common) knows only -vsync; 5.x+ accept it (deprecated)
            "-vsync", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
        };
        (int code, string err) result;
        try
        {
            result = FfmpegTools.RunBinary(tools.FfmpegPath, args, path, stdout =>
            {
                while (got < unique.Length)
                {
                    using var frame = decoded[got];
                    var span = frame.bytes;
                    int filled = 0;
                    while (filled < frameBytes)
                    {
                        int n = stdout.Read(span[filled..]);
                        if (n == 0) return;
                        filled += n;
                    }
                    got++;
                }
            });
        }
        catch
        {
            decoded.Dispose();
            throw;
        }
        if (got < unique.Length)
        {
            decoded.Dispose();
            if (result.code != 0) throw new MediaDecodeException(path, $"ffmpeg failed to decode the video: {FfmpegTools.LastLine(result.err)}");
            return null;
        }
        if (unique.Length == indices.Length) return new VideoFrames(decoded, indices, info);
        // short clip: repeat decoded frames in sampling order
        var slot = new Dictionary<int, int>();
        for (int u = 0; u < unique.Length; u++) slot[unique[u]] = u;
        using var map = torch.tensor(indices.Select(i => (long)slot[i]).ToArray());
        using (decoded) return new VideoFrames(decoded.index_select(0, map), indices, info);
    }

    /// <summary>The filter chain: keep the chosen frame numbers, scale (bilinear, antialiased when shrinking), to rgb24.</summary>
    internal static string Filter(IReadOnlyList<int> frames, int w, int h, FrameResize resize)
    {
        var sb = new StringBuilder("select='");
        for (int i = 0; i < frames.Count; i++)
        {
            if (i > 0) sb.Append('+');
            sb.Append("eq(n,").Append(frames[i].ToString(CultureInfo.InvariantCulture)).Append(')');
        }
        sb.Append("',");
        string size = $"{w}:{h}";
        const string flags = "flags=bilinear+accurate_rnd+full_chroma_int";
        sb.Append(resize == FrameResize.FitPad
            ? $"scale={size}:force_original_aspect_ratio=decrease:{flags},pad={size}:0:0:black"
            : $"scale={size}:{flags}");
        sb.Append(",format=rgb24");
        return sb.ToString();
    }
}

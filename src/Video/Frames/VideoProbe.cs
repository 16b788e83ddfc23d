using Llama3.Multimodal.Text;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Llama3.Multimodal.Vision;

namespace Llama3.Multimodal.Video;

/// <summary>Reads a video file's frame count, duration, frame rate, size and rotation with <c>ffprobe</c>.</summary>
public static class VideoProbe
{
    /// <summary>
    /// Probes the first video stream of <paramref name="path"/>. Frames are counted from packets (fast, no decoding);
    /// pass <paramref name="countDecodedFrames"/> to decode the stream and count the frames the decoder really emits.
    /// Throws <see cref="MediaDecodeException"/> for a missing, empty, unreadable or audio-only file and for missing tools.
    /// </summary>
    /// <param name="path">Video file (mp4, webm, mkv, avi, gif, … anything ffmpeg reads).</param>
    /// <param name="ffmpegDirectory">Folder holding ffmpeg and ffprobe; null = <c>LLAMA3MM_FFMPEG_DIR</c> or <c>PATH</c>.</param>
    /// <param name="countDecodedFrames">Count decoded frames instead of packets (slower, exact for every container).</param>
    public static VideoInfo Probe(string path, string? ffmpegDirectory = null, bool countDecodedFrames = false)
    {
        CheckFile(path);
        var tools = FfmpegTools.Locate(ffmpegDirectory, path);
        return Probe(path, tools, countDecodedFrames);
    }

    internal static void CheckFile(string path)
    {
        if (!File.Exists(path)) throw new MediaDecodeException(path, "file not found.");
        if (new FileInfo(path).Length == 0) throw new MediaDecodeException(path, "file is empty (0 bytes), not a video.");
    }

    internal static VideoInfo Probe(string path, FfmpegTools tools, bool countDecodedFrames)
    {
        var args = new List<string> { "-v", "error", "-print_format", "json", "-show_format", "-show_streams" };
        args.Add(countDecodedFrames ? "-count_frames" : "-count_packets");
        args.Add(path);
        var (code, output, err) = FfmpegTools.RunText(tools.FfprobePath, args, path);
        if (code != 0) throw new MediaDecodeException(path, $"ffprobe cannot read the file: {FfmpegTools.LastLine(err)}");
        JsonObject root;
        try
        {
            root = JsonNode.Parse(output) as JsonObject ?? throw new JsonException("not an object");
        }
        catch (JsonException e)
        {
            throw new MediaDecodeException(path, $"ffprobe printed unreadable JSON: {e.Message}", e);
        }
        var streams = (root["streams"] as JsonArray ?? new JsonArray()).OfType<JsonObject>().ToList();
        var video = streams.FirstOrDefault(s => Str(s, "codec_type") == "video" && !IsAttachedPicture(s));
        if (video is null)
        {
            string kinds = streams.Count == 0 ? "none" : string.Join(", ", streams.Select(s => Str(s, "codec_type") ?? "unknown"));
            throw new MediaDecodeException(path, $"contains no video stream (streams found: {kinds}); an audio-only or cover-art-only file cannot be sampled.");
        }
        var format = root["format"] as JsonObject;
        int width = (int)(Num(video, "width") ?? 0), height = (int)(Num(video, "height") ?? 0);
        if (width <= 0 || height <= 0) throw new MediaDecodeException(path, $"video stream has no valid size ({width}×{height}).");
        double duration = Num(video, "duration") ?? Num(format, "duration") ?? 0;
        int frames = (int)(Num(video, countDecodedFrames ? "nb_read_frames" : "nb_read_packets") ?? Num(video, "nb_frames") ?? 0);
        if (frames <= 0) throw new MediaDecodeException(path, "video stream holds no frames.");
        // frames ÷ duration is the true average for variable-rate streams too; containers often guess avg_frame_rate
        double rate = duration > 0 ? frames / duration : Rate(Str(video, "avg_frame_rate"));
        return new VideoInfo
        {
            Path = path,
            Container = Str(format, "format_name") ?? "unknown",
            StreamIndex = (int)(Num(video, "index") ?? 0),
            Codec = Str(video, "codec_name") ?? "unknown",
            CodedWidth = width,
            CodedHeight = height,
            RotationDegrees = Rotation(video),
            FrameCount = frames,
            DurationSeconds = duration,
            FrameRate = rate,
        };
    }

    static bool IsAttachedPicture(JsonObject s) =>
        s["disposition"] is JsonObject d && d["attached_pic"] is JsonNode n && n.ToString() == "1";

    /// <summary>
    /// Clockwise rotation from the display matrix side data (ffprobe prints it counter-clockwise, e.g. −90 for a
    /// portrait phone clip) or the legacy <c>rotate</c> tag (clockwise), normalised to 0/90/180/270.
    /// </summary>
    static int Rotation(JsonObject video)
    {
        double? ccw = null;
        if (video["side_data_list"] is JsonArray sides)
            foreach (var sd in sides.OfType<JsonObject>())
                if (Num(sd, "rotation") is double r) { ccw = r; break; }
        double cw = ccw is double c ? -c : 0;
        if (ccw is null && video["tags"] is JsonObject tags && Num(tags, "rotate") is double tag) cw = tag;
        int deg = (int)Math.Round(cw / 90.0) * 90;
        return ((deg % 360) + 360) % 360;
    }

    static string? Str(JsonObject? o, string key) => o?[key] is JsonNode n ? n.ToString() : null;

    static double? Num(JsonObject? o, string key)
    {
        if (o?[key] is not JsonNode n) return null;
        return double.TryParse(n.ToString(), NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && double.IsFinite(v) ? v : null;
    }

    static double Rate(string? fraction)
    {
        if (string.IsNullOrEmpty(fraction)) return 0;
        var parts = fraction.Split('/');
        if (parts.Length == 2 && double.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out double a)
            && double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double b) && b != 0)
            return a / b;
        return double.TryParse(fraction, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v : 0;
    }
}

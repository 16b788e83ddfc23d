using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;

namespace Llama3.Multimodal.Video.Tests;

public class MediaErrorTests
{
    [Fact]
    public void MissingFileIsNamed()
    {
        string path = Clips.PathOf("does-not-exist.mp4");
        var e = Assert.Throws<MediaDecodeException>(() => VideoFrameReader.Read(path));
        Assert.Equal(path, e.MediaPath);
        Assert.Contains("not found", e.Message);
        Assert.StartsWith(path, e.Message);
    }

    [Fact]
    public void EmptyFileIsRejected()
    {
        string path = Clips.PathOf("empty.mp4");
        File.WriteAllBytes(path, Array.Empty<byte>());
        var e = Assert.Throws<MediaDecodeException>(() => VideoFrameReader.Read(path));
        Assert.Contains("empty", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void CorruptFileReportsFfprobesComplaint()
    {
        string path = Clips.PathOf("corrupt.mp4");
        var bytes = new byte[4096];
        new Random(7).NextBytes(bytes);
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<MediaDecodeException>(() => VideoFrameReader.Read(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("cannot read", e.Message);
    }

    [Fact]
    public void TruncatedVideoIsRejected()
    {
        string good = Clips.MovingSquare("square60.mp4", 60, "-c:v", "libx264", "-pix_fmt", "yuv420p");
        string path = Clips.PathOf("truncated.mp4");
        var all = File.ReadAllBytes(good);
        File.WriteAllBytes(path, all[..(all.Length / 3)]);        // moov atom is at the end: header lost
        var e = Assert.Throws<MediaDecodeException>(() => VideoFrameReader.Read(path));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void AudioOnlyFileHasNoVideoStream()
    {
        string path = Clips.Render("tone.m4a", "-f", "lavfi", "-i", "sine=frequency=440:duration=0.5", "-c:a", "aac");
        var e = Assert.Throws<MediaDecodeException>(() => VideoFrameReader.Read(path));
        Assert.Contains("no video stream", e.Message);
        Assert.Contains("audio", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void MissingFfmpegIsExplained()
    {
        string path = Clips.MovingSquare("square10.mp4", 10, "-c:v", "libx264", "-pix_fmt", "yuv420p");
        string nowhere = Clips.PathOf("no-ffmpeg-here");
        Directory.CreateDirectory(nowhere);
        var e = Assert.Throws<MediaDecodeException>(() => VideoFrameReader.Read(path, new FrameSamplingOptions { FfmpegDirectory = nowhere }));
        Assert.Contains("ffmpeg and ffprobe not found", e.Message);
        Assert.Contains("apt-get install -y ffmpeg", e.Message);
        Assert.Contains(path, e.Message);
    }
}

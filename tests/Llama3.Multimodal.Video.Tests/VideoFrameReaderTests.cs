namespace Llama3.Multimodal.Video.Tests;

public class VideoFrameReaderTests
{
    static void AssertFramesShowIndices(VideoFrames frames, double sx = 1.0)
    {
        for (int i = 0; i < frames.Count; i++)
        {
            var c = Clips.RedCentroid(frames.Pixels, i);
            Assert.True(c.HasValue, $"frame {i} (source {frames.FrameIndices[i]}) shows no red square");
            Assert.Equal(frames.FrameIndices[i], Clips.FrameNumberFromX(c.Value.X, sx));
        }
    }

    [Fact]
    public void Mp4DecodesTheSampledFramesAtTheirPositions()
    {
        string path = Clips.MovingSquare("square60.mp4", 60, "-c:v", "libx264", "-pix_fmt", "yuv420p");
        using var frames = VideoFrameReader.Read(path, new FrameSamplingOptions { NumFrames = 16 });
        Assert.Equal(60, frames.Info.FrameCount);
        Assert.Equal(10.0, frames.Info.FrameRate, 3);
        Assert.Equal(6.0, frames.Info.DurationSeconds, 1);
        Assert.Equal(new long[] { 16, Clips.H, Clips.W, 3 }, frames.Pixels.shape);
        Assert.Equal(FrameSampler.UniformIndices(60, 16), frames.FrameIndices);
        AssertFramesShowIndices(frames);
        // pixel content: the square is red (RGB order), the background black
        var c = Clips.RedCentroid(frames.Pixels, 5)!.Value;
        var px = frames.Pixels[5, (long)Math.Round(c.Y), (long)Math.Round(c.X)];
        Assert.InRange(px[0].item<byte>(), 200, 255);
        Assert.InRange(px[1].item<byte>(), 0, 40);
        Assert.InRange(px[2].item<byte>(), 0, 40);
        Assert.InRange(frames.Pixels[5, 2, 200, 0].item<byte>(), 0, 20);
    }

    [Fact]
    public void FramesAreScaledToTheRequestedSize()
    {
        string path = Clips.MovingSquare("square60.mp4", 60, "-c:v", "libx264", "-pix_fmt", "yuv420p");
        using var stretched = VideoFrameReader.Read(path, new FrameSamplingOptions { NumFrames = 8, Width = 128, Height = 64, Resize = FrameResize.Stretch });
        Assert.Equal(new long[] { 8, 64, 128, 3 }, stretched.Pixels.shape);
        AssertFramesShowIndices(stretched, sx: 0.5);

        // fit 256×64 into 64×64: scaled to 64×16 and padded below with black
        using var fitted = VideoFrameReader.Read(path, new FrameSamplingOptions { NumFrames = 4, Width = 64, Height = 64, Resize = FrameResize.FitPad });
        Assert.Equal(new long[] { 4, 64, 64, 3 }, fitted.Pixels.shape);
        var c = Clips.RedCentroid(fitted.Pixels, 3)!.Value;
        Assert.InRange(c.Y, (Clips.Top + 3.5) / 4 - 1, (Clips.Top + 3.5) / 4 + 1);
        Assert.Equal(0, fitted.Pixels.narrow(1, 20, 44).max().item<byte>() > 30 ? 1 : 0);
        Assert.Equal(fitted.FrameIndices[3], Clips.FrameNumberFromX(c.X, 0.25));
    }

    [Theory]
    [InlineData("square.webm", "libvpx-vp9")]
    [InlineData("square.mkv", "libx264")]
    [InlineData("square.avi", "mjpeg")]
    [InlineData("square.gif", "gif")]
    public void OtherContainersDecodeTheSameFrames(string name, string codec)
    {
        var args = codec == "gif" ? new[] { "-c:v", "gif" }
            : codec == "mjpeg" ? new[] { "-c:v", "mjpeg", "-q:v", "2", "-pix_fmt", "yuvj444p" }
            : codec == "libvpx-vp9" ? new[] { "-c:v", "libvpx-vp9", "-deadline", "realtime", "-b:v", "200k" }
            : new[] { "-c:v", codec, "-pix_fmt", "yuv420p" };
        string path = Clips.MovingSquare(name, 24, args);
        using var frames = VideoFrameReader.Read(path, new FrameSamplingOptions { NumFrames = 7 });
        Assert.Equal(24, frames.Info.FrameCount);
        Assert.Equal(new[] { 0, 4, 8, 12, 15, 19, 23 }, frames.FrameIndices);
        AssertFramesShowIndices(frames);
    }

    [Fact]
    public void ShortClipRepeatsDecodedFrames()
    {
        string path = Clips.MovingSquare("square10.mp4", 10, "-c:v", "libx264", "-pix_fmt", "yuv420p");
        using var frames = VideoFrameReader.Read(path, new FrameSamplingOptions { NumFrames = 64, Width = 128, Height = 32, Resize = FrameResize.Stretch });
        Assert.Equal(64, frames.Count);
        Assert.Equal(FrameSampler.UniformIndices(10, 64), frames.FrameIndices);
        AssertFramesShowIndices(frames, sx: 0.5);
        Assert.True(frames.Pixels[0].equal(frames.Pixels[3]).all().item<bool>());   // repeats are identical copies
    }

    [Fact]
    public void VariableFrameRateClipIsSampledByFrameNotByTime()
    {
        // 30 frames: the first 20 are 0.05 s apart, the last 10 are 0.5 s apart (1 s + 5 s of video).
        string path = Clips.Render("vfr.mkv", "-f", "lavfi", "-i",
            $"color=c=black:s={Clips.W}x{Clips.H}:r=10:d=3[bg];color=c=red:s=8x8:r=10[sq];[bg][sq]overlay=x='floor(40*t+0.5)':y={Clips.Top}:shortest=1," +
            "settb=1/1000,setpts='if(lt(N,20),N*0.05,1+(N-20)*0.5)/TB'",
            "-frames:v", "30", "-fps_mode", "vfr", "-c:v", "libx264", "-pix_fmt", "yuv420p");
        using var frames = VideoFrameReader.Read(path, new FrameSamplingOptions { NumFrames = 6 });
        Assert.Equal(30, frames.Info.FrameCount);
        Assert.InRange(frames.Info.FrameRate, 30 / 5.6, 30 / 5.4);
        Assert.Equal(new[] { 0, 6, 12, 17, 23, 29 }, frames.FrameIndices);
        AssertFramesShowIndices(frames);
    }

    [Fact]
    public void ClipWithMorePacketsThanFramesIsSampledOverTheDecodedFrames()
    {
        // Cutting at 1 s without re-encoding keeps the packets from the keyframe on and writes an edit list: 60 packets,
        // 50 shown frames (source frames 10…59). The packet count misleads, so the reader counts decoded frames.
        string plain = Clips.MovingSquare("square60.mp4", 60, "-c:v", "libx264", "-pix_fmt", "yuv420p");
        string cut = Clips.Render("editlist.mp4", "-ss", "1.0", "-i", plain, "-c", "copy");
        Assert.Equal(60, VideoProbe.Probe(cut).FrameCount);
        Assert.Equal(50, VideoProbe.Probe(cut, countDecodedFrames: true).FrameCount);
        using var frames = VideoFrameReader.Read(cut, new FrameSamplingOptions { NumFrames = 5 });
        Assert.Equal(50, frames.Info.FrameCount);
        Assert.Equal(new[] { 0, 12, 25, 37, 49 }, frames.FrameIndices);
        for (int i = 0; i < frames.Count; i++)
            Assert.Equal(10 + frames.FrameIndices[i], Clips.FrameNumberFromX(Clips.RedCentroid(frames.Pixels, i)!.Value.X));
    }

    [Fact]
    public void RotatedPhoneVideoIsTurnedUpright()
    {
        string plain = Clips.MovingSquare("square20.mp4", 20, "-c:v", "libx264", "-pix_fmt", "yuv420p");
        // A display matrix rotating the picture 90° counter-clockwise (ffprobe: rotation 90), as phones write.
        string rotated = Clips.Render("rotated.mp4", "-i", plain, "-c", "copy", "-metadata:s:v:0", "rotate=90");
        var info = VideoProbe.Probe(rotated);
        Assert.Equal(270, info.RotationDegrees);
        Assert.Equal((Clips.W, Clips.H), (info.CodedWidth, info.CodedHeight));
        Assert.Equal((Clips.H, Clips.W), (info.DisplayWidth, info.DisplayHeight));

        using var frames = VideoFrameReader.Read(rotated, new FrameSamplingOptions { NumFrames = 5 });
        Assert.Equal(new long[] { 5, Clips.W, Clips.H, 3 }, frames.Pixels.shape);   // portrait now
        for (int i = 0; i < frames.Count; i++)
        {
            // 90° CCW: source (x, y) lands at (y, W−1−x)
            var c = Clips.RedCentroid(frames.Pixels, i)!.Value;
            Assert.InRange(c.X, Clips.Top + 3.5 - 1, Clips.Top + 3.5 + 1);
            Assert.Equal(frames.FrameIndices[i], Clips.FrameNumberFromX(Clips.W - 1 - c.Y));
        }
    }

    [Fact]
    public void NormalisedFramesUseClipStatistics()
    {
        string path = Clips.MovingSquare("square10.mp4", 10, "-c:v", "libx264", "-pix_fmt", "yuv420p");
        using var frames = VideoFrameReader.Read(path, new FrameSamplingOptions { NumFrames = 2 });
        using var x = frames.ToNormalized();
        Assert.Equal(new long[] { 2, 3, Clips.H, Clips.W }, x.shape);
        // a black background pixel: (0 − mean)/std per channel
        Assert.Equal(-0.48145466 / 0.26862954, x[0, 0, 2, 200].item<float>(), 1);
        Assert.Equal(-0.40821073 / 0.27577711, x[0, 2, 2, 200].item<float>(), 1);
    }
}

using System.Diagnostics;
using Llama3.Multimodal.Tests.Shared;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Video;

namespace Llama3.Multimodal.Video.Tests;

/// <summary>Seeded mutations of an mp4: probed (and sampled), or a <see cref="MediaDecodeException"/>, within a time bound.</summary>
public class VideoFuzzTests
{
    [Fact]
    public void MutatedMp4FilesFailCleanly()
    {
        if (!File.Exists("/usr/bin/ffmpeg")) Assert.Fail("ffmpeg not found: apt-get install ffmpeg (build/test.sh installs it).");
        string clip = Path.Combine(Directory.CreateTempSubdirectory("l3mm-vfuzz").FullName, "seed.mp4");
        var psi = new ProcessStartInfo("ffmpeg", $"-v error -f lavfi -i testsrc=size=32x32:rate=4:duration=1 -pix_fmt yuv420p -y {clip}") { RedirectStandardError = true };
        using (var p = Process.Start(psi)!) { p.WaitForExit(60_000); Assert.Equal(0, p.ExitCode); }
        Fuzz.Run(File.ReadAllBytes(clip), 60, 31, ".mp4", path =>
        {
            var info = VideoProbe.Probe(path);
            if (info.FrameCount > 0) using (VideoFrameReader.Read(path, new FrameSamplingOptions { NumFrames = 2, Width = 16, Height = 16 })) { }
        }, typeof(MediaDecodeException), maxMillis: 20_000);
    }
}

using System.Text;
using Llama3.Multimodal.Tests.Shared;
using Llama3.Multimodal.Training;

namespace Llama3.Multimodal.Training.Tests.Data;

/// <summary>Seeded mutations of JSONL manifests: read, or a <see cref="DataFormatException"/> naming file and line.</summary>
public class ManifestFuzzTests
{
    [Fact]
    public void MutatedImageCaptionManifestsFailCleanly()
    {
        string dir = Directory.CreateTempSubdirectory("l3mm-mfuzz").FullName;
        var sb = new StringBuilder();
        for (int i = 0; i < 6; i++)
        {
            File.WriteAllBytes(Path.Combine(dir, $"img{i}.png"), new byte[] { 137, 80, 78, 71 });
            sb.Append($"{{\"image\": \"img{i}.png\", \"caption\": \"a red circle number {i}\"}}\n");
        }
        Fuzz.Run(Encoding.UTF8.GetBytes(sb.ToString()), 2000, 41, ".jsonl", p =>
        {
            // Mutated manifests live in their own folder: copy beside the images so relative paths can resolve.
            string m = Path.Combine(dir, Path.GetFileName(p));
            File.Copy(p, m, true);
            JsonlManifest.ReadImageCaptions(m, false, out _);
        }, typeof(DataFormatException));
    }

    [Fact]
    public void MutatedDialogManifestsFailCleanly()
    {
        var sb = new StringBuilder();
        for (int i = 0; i < 5; i++)
            sb.Append($"{{\"messages\": [{{\"role\": \"system\", \"content\": \"Be brief.\"}}, {{\"role\": \"user\", \"content\": \"Question {i}?\"}}, {{\"role\": \"assistant\", \"content\": \"Answer {i}.\"}}]}}\n");
        Fuzz.Run(Encoding.UTF8.GetBytes(sb.ToString()), 2000, 42, ".jsonl", p => JsonlManifest.ReadDialogs(p, false, out _), typeof(DataFormatException));
    }
}

using Llama3.Multimodal.Tests.Shared;

namespace Llama3.Multimodal.Video.Tests;

/// <summary>The Video library passes no temporary TorchSharp scalars (see <c>Llama3.Multimodal.Text.Scalars</c>), so models and recipes are safe to run next to other allocating threads.</summary>
public class ScalarTemporariesTests
{
    [Fact]
    public void CreatesNoTemporaryScalars()
    {
        var found = ScalarTemporaries.Find(typeof(VideoLanguageModel).Assembly);
        Assert.True(found.Count == 0, "temporary scalars in Llama3.Multimodal.Video:\n" + string.Join("\n", found));
    }
}

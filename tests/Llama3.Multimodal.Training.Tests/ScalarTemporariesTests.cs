using Llama3.Multimodal.Tests.Shared;

namespace Llama3.Multimodal.Training.Tests;

/// <summary>
/// No library passes temporary TorchSharp scalars (see <c>Llama3.Multimodal.Text.Scalars</c>), so models and recipes are
/// safe to run next to other allocating threads.
/// </summary>
public class ScalarTemporariesTests
{
    [Theory]
    [InlineData(typeof(Llama3.Multimodal.Text.LlamaForCausalLM))]
    [InlineData(typeof(Llama3.Multimodal.Vision.VisionLanguageModel))]
    [InlineData(typeof(Llama3.Multimodal.Speech.SpeechLanguageModel))]
    [InlineData(typeof(Llama3.Multimodal.Video.VideoLanguageModel))]
    [InlineData(typeof(Trainer))]
    public void TheLibraryCreatesNoTemporaryScalars(Type type)
    {
        var found = ScalarTemporaries.Find(type.Assembly);
        Assert.True(found.Count == 0, $"temporary scalars in {type.Assembly.GetName().Name}:\n" + string.Join("\n", found));
    }
}

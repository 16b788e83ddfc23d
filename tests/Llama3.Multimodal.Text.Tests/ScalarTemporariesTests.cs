using Llama3.Multimodal.Tests.Shared;

namespace Llama3.Multimodal.Text.Tests;

/// <summary>The text core passes no temporary TorchSharp scalars (see <see cref="Scalars"/> and <see cref="ScalarTemporaries"/>).</summary>
public class ScalarTemporariesTests
{
    [Fact]
    public void TheTextCoreCreatesNoTemporaryScalars()
    {
        var found = ScalarTemporaries.Find(typeof(LlamaForCausalLM).Assembly);
        Assert.True(found.Count == 0, "temporary scalars in the text core:\n" + string.Join("\n", found));
    }
}

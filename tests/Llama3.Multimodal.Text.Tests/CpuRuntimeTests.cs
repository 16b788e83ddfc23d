using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Text.Tests;

public class CpuRuntimeTests
{
    [Fact]
    public void LoadingTheLibrarySetsAPassiveOpenMpWaitPolicyUnlessOneIsGiven()
    {
        if (OperatingSystem.IsWindows()) return;
        CpuRuntime.Configure();
        string? given = Environment.GetEnvironmentVariable(CpuRuntime.OmpWaitPolicyVariable);
        Assert.Equal(given ?? CpuRuntime.DefaultOmpWaitPolicy, CpuRuntime.OmpWaitPolicy);
    }
}

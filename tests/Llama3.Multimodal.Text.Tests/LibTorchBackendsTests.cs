using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Text.Tests;

public class LibTorchBackendsTests
{
    [Fact]
    public void NnpackIsTurnedOffThroughLibTorchsGlobalFlag()
    {
        // The flag of at::globalContext() that PyTorch's torch.backends.nnpack.set_flags sets: readable here, off after.
        Assert.NotNull(LibTorchBackends.NnpackEnabled);
        Assert.True(LibTorchBackends.DisableNnpack());
        Assert.False(LibTorchBackends.NnpackEnabled);
        Assert.True(LibTorchBackends.DisableNnpack());   // once per process; later calls only report
        Assert.False(LibTorchBackends.NnpackEnabled);
    }
}

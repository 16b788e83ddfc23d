using Llama3.Multimodal.Vision;

namespace Llama3.Multimodal.Vision.Tests;

public class EncoderInputTests
{
    [Fact]
    public void WrongTileSizeIsRejectedWithAClearMessage()
    {
        using var m = TestSupport.Tiny(2);
        using var batch = new ImagePreprocessor(56).Batch(new[] { (IReadOnlyList<RgbImage>)new[] { TestSupport.Scene(60, 60, 1) } });
        var e = Assert.Throws<ArgumentException>(() => m.EncodeImages(batch));
        Assert.Contains("112", e.Message);
    }
}

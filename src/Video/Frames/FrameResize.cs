namespace Llama3.Multimodal.Video;

/// <summary>How decoded frames are brought to the requested size.</summary>
public enum FrameResize
{
    /// <summary>Scale to exactly width × height (aspect ratio not kept).</summary>
    Stretch,
    /// <summary>Scale to fit inside width × height keeping the aspect ratio, then pad right/bottom with black (as image tiles are padded).</summary>
    FitPad,
}

namespace Llama3.Multimodal.Demo;

/// <summary>The user prompts of the synthetic dialogs; training and evaluation of the demo model use the same ones.</summary>
public static class SyntheticPrompts
{
    /// <summary>Image captioning prompt.</summary>
    public const string DescribeImage = "Describe the image.";
    /// <summary>Speech recognition prompt.</summary>
    public const string TranscribeAudio = "Transcribe the audio.";
    /// <summary>Video captioning prompt.</summary>
    public const string DescribeVideo = "What happens in the video?";
}

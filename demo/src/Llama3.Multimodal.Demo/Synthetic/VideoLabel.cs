namespace Llama3.Multimodal.Demo;

/// <summary>One record of a video set's <c>labels.jsonl</c>.</summary>
/// <param name="Video">Absolute MP4 path.</param>
/// <param name="Caption">Reference caption.</param>
/// <param name="Frames">Frames in the clip.</param>
/// <param name="Fps">Frames per second.</param>
public sealed record VideoLabel(string Video, string Caption, int Frames, int Fps);

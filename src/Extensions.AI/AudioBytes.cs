using Llama3.Multimodal.Speech;

namespace Llama3.Multimodal.Extensions.AI;

/// <summary>Decodes audio bytes from a message to 16 kHz mono samples (WAV in memory; other formats through ffmpeg).</summary>
internal static class AudioBytes
{
    public static float[] Decode(byte[] data, string mediaType, string? name)
    {
        string source = name ?? $"{mediaType} content";
        if (WavReader.LooksLikeWav(data)) return AudioLoader.ToModelRate(WavReader.Parse(data, source));
        string ext = mediaType switch
        {
            "audio/mpeg" or "audio/mp3" => ".mp3",
            "audio/flac" or "audio/x-flac" => ".flac",
            "audio/ogg" or "audio/opus" => ".ogg",
            "audio/mp4" or "audio/m4a" or "audio/x-m4a" => ".m4a",
            "audio/webm" => ".webm",
            _ => ".bin",
        };
        string tmp = Path.Combine(Path.GetTempPath(), "l3mm-audio-" + Guid.NewGuid().ToString("N") + ext);
        try
        {
            File.WriteAllBytes(tmp, data);
            return AudioLoader.Load(tmp);
        }
        finally
        {
            try { File.Delete(tmp); } catch (IOException) { }
        }
    }
}

using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;

namespace Llama3.Multimodal.Video;

/// <summary>A video-language model: an image-text model (Llama 3.2 Vision layout) plus the video adapter.</summary>
public sealed record VideoLanguageConfig
{
    /// <summary>The image-text model the video adapter is added to.</summary>
    public required VisionLanguageConfig Base { get; init; }
    /// <summary>The video adapter.</summary>
    public required VideoConfig Video { get; init; }

    /// <summary>Tokens per frame of the base model's image path (max tiles × tokens per tile).</summary>
    public int TokensPerFrame => Base.Vision.MaxNumTiles * Base.Vision.TokensPerTile;

    /// <summary>The decoder layers that get a video cross-attention layer right before them (base stack indices).</summary>
    public IReadOnlyList<int> VideoCrossAttentionLayers => Video.LayersFor(Base.CrossAttentionLayers);

    /// <summary>Checks both parts and that they fit together; throws <see cref="ConfigException"/> naming the field.</summary>
    public VideoLanguageConfig Validate(string source = "config")
    {
        Base.Validate(source);
        Video.Validate(Base.Text.NumLayers, Base.CrossAttentionLayers, source + " video_config");
        if (Video.Aggregator.Dim != Base.Text.HiddenSize)
            throw new ConfigException($"{source} video_config: aggregator dim {Video.Aggregator.Dim} must equal the text hidden size {Base.Text.HiddenSize}.");
        if (Video.Aggregator.TokensPerFrame != TokensPerFrame)
            throw new ConfigException($"{source} video_config: tokens_per_frame {Video.Aggregator.TokensPerFrame} must equal the image path's {TokensPerFrame} (tiles × tokens per tile).");
        if (Video.VideoTokenId < Base.Text.VocabSize || Video.VideoTokenId >= Base.Text.EmbeddingRows || Video.VideoTokenId == Base.ImageTokenIndex)
            throw new ConfigException($"{source} video_config: video_token_id {Video.VideoTokenId} must be an extra embedding row ({Base.Text.VocabSize}..{Base.Text.EmbeddingRows - 1}) other than <|image|> ({Base.ImageTokenIndex}).");
        return this;
    }
}

using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Video;

/// <summary>
/// The video adapter (checkpoint prefix <c>video_model.</c>): the temporal aggregator and the video cross-attention
/// layers. The layers run inside the decoder stack, each right before its decoder layer
/// (<see cref="VideoConfig.CrossAttentionLayers"/>), but belong here, so their keys are
/// <c>video_model.cross_attention_layers.{j}.*</c> and the decoder keeps the image-text model's numbering.
/// </summary>
public sealed class VideoAdapter : nn.Module
{
#pragma warning disable IDE1006
    /// <summary>Video cross-attention layer j, run right before decoder layer <c>VideoConfig.CrossAttentionLayers[j]</c>.</summary>
    public readonly ModuleList<VideoCrossAttentionLayer> cross_attention_layers;
    /// <summary>Perceiver resampler merging groups of frames.</summary>
    public readonly TemporalAggregator aggregator;
#pragma warning restore IDE1006

    /// <summary>Wraps the aggregator and the video cross-attention layers.</summary>
    public VideoAdapter(TemporalAggregator aggregator, IEnumerable<VideoCrossAttentionLayer> crossAttentionLayers) : base("VideoAdapter")
    {
        this.aggregator = aggregator;
        cross_attention_layers = new ModuleList<VideoCrossAttentionLayer>(crossAttentionLayers.ToArray());
        RegisterComponents();
    }

    /// <summary>Total parameter count (works on the meta device).</summary>
    public long ParameterCount() => parameters().Sum(p => p.numel());
}

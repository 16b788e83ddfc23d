using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Video;

/// <summary>
/// The video parts outside the decoder stack (checkpoint prefix <c>video_model.</c>): the temporal aggregator. The video
/// cross-attention layers run inside the stack but are saved under <c>video_model.cross_attention_layers.{j}</c>.
/// </summary>
public sealed class VideoAdapter : nn.Module
{
#pragma warning disable IDE1006
    /// <summary>Perceiver resampler merging groups of frames.</summary>
    public readonly TemporalAggregator aggregator;
#pragma warning restore IDE1006

    /// <summary>Wraps the aggregator.</summary>
    public VideoAdapter(TemporalAggregator aggregator) : base("VideoAdapter")
    {
        this.aggregator = aggregator;
        RegisterComponents();
    }
}

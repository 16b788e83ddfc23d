using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Video;

/// <summary>
/// The temporal aggregator (checkpoint prefix <c>video_model.aggregator.</c>): a perceiver resampler as in Flamingo
/// (open_flamingo's flattened form) that merges each group of consecutive frames into one aggregated frame. Per
/// group, the learned time embedding of each frame's slot (and, when <see cref="TemporalAggregatorConfig.MaxGroups"/>
/// &gt; 0, the learned embedding of the group's index in the clip) is added to all of that frame's tokens, the frames'
/// tokens are flattened into one sequence, and learned latents attend to it (and to themselves) through the layers; a final
/// LayerNorm gives the aggregated frame. 64 frames with groups of 32 give 2 aggregated frames. With
/// <see cref="TemporalAggregatorConfig.Merge"/> = <c>per_position</c> the same layers run on each token position
/// separately: position t's latent, plus the mean of the group's tokens at t, attends to those G tokens (and to itself),
/// so the aggregated frame keeps the frame's layout and starts as the average of the group's frames.
/// </summary>
public sealed class TemporalAggregator : nn.Module
{
#pragma warning disable IDE1006
    /// <summary>Learned latent queries [latents, dim].</summary>
    public readonly Parameter latents;
    /// <summary>Learned time embedding [max frames per group, dim], one row per frame slot of a group.</summary>
    public readonly Parameter time_embedding;
    /// <summary>Learned group embedding [max groups, dim] (open_flamingo's <c>media_time_embs</c>), or null when
    /// <see cref="TemporalAggregatorConfig.MaxGroups"/> is 0.</summary>
    public readonly Parameter? group_embedding;
    /// <summary>Perceiver layers.</summary>
    public readonly ModuleList<PerceiverLayer> layers;
    /// <summary>Final norm of the latents.</summary>
    public readonly PerceiverLayerNorm norm;
#pragma warning restore IDE1006

    /// <summary>The configuration.</summary>
    public TemporalAggregatorConfig Config { get; }

    float[]? _placeCode;

    /// <summary>Creates the aggregator with uninitialised weights (use the meta device to count parameters).</summary>
    public TemporalAggregator(TemporalAggregatorConfig config, Device? device = null, ScalarType dtype = ScalarType.Float32) : base("TemporalAggregator")
    {
        Config = config.Validate();
        latents = Layers.Param(new long[] { config.Latents, config.Dim }, device, dtype);
        time_embedding = Layers.Param(new long[] { config.MaxFramesPerGroup, config.Dim }, device, dtype);
        if (config.MaxGroups > 0) group_embedding = Layers.Param(new long[] { config.MaxGroups, config.Dim }, device, dtype);
        layers = new ModuleList<PerceiverLayer>(Enumerable.Range(0, config.NumLayers)
            .Select(_ => new PerceiverLayer(new PerceiverAttention(config, device, dtype), new PerceiverFeedForward(config, device, dtype)))
            .ToArray());
        norm = new PerceiverLayerNorm(config.Dim, config.LayerNormEps, device, dtype);
        RegisterComponents();
    }

    /// <summary>
    /// Deterministic fresh weights from <paramref name="seed"/>: latents, time and group embeddings N(0, 1)
    /// (open_flamingo's <c>randn</c>), projections N(0, std²), norms 1 and 0. Per-position latents start at 0 instead:
    /// each position's query then starts as the mean of its tokens over the group, and the aggregated frame as the
    /// normed average of the group's frames rather than as noise that hides them.
    /// </summary>
    public TemporalAggregator InitializeWeights(long seed, double std = 0.02)
    {
        WeightInit.Apply(this, seed, std);
        var gen = new Generator((ulong)seed + 1, CPU);
        using var noGrad = torch.no_grad();
        foreach (var p in new[] { latents, time_embedding, group_embedding })
        {
            if (p is null) continue;
            if (p.device_type == DeviceType.META) continue;
            using var cpu = torch.empty(p.shape, ScalarType.Float32).normal_(0, 1, gen);
            if (ReferenceEquals(p, latents) && Config.PerPosition) p.zero_();
            else p.copy_(cpu);
        }
        return this;
    }

    /// <summary>Total parameter count (works on the meta device).</summary>
    public long ParameterCount() => parameters().Sum(p => p.numel());

    /// <summary>
    /// Frame features [B, F, T, D] (T = tokens per frame) → aggregated frames [B, ceil(F/G), L, D] with G =
    /// <paramref name="framesPerGroup"/> (default <see cref="TemporalAggregatorConfig.FramesPerGroup"/>) and L latents.
    /// A last group shorter than G uses the first time-embedding rows. With group embeddings, group k's tokens also get
    /// row k; a clip with more groups than <see cref="TemporalAggregatorConfig.MaxGroups"/> is refused.
    /// </summary>
    public Tensor Forward(Tensor frames, int? framesPerGroup = null)
    {
        int g = framesPerGroup ?? Config.FramesPerGroup;
        if (frames.dim() != 4 || frames.shape[3] != Config.Dim)
            throw new ArgumentException($"frame features must be [B, F, T, {Config.Dim}]; got [{string.Join(", ", frames.shape)}].");
        if (g < 1 || g > Config.MaxFramesPerGroup)
            throw new ArgumentException($"frames per group {g} must be in 1..{Config.MaxFramesPerGroup} (rows of the time embedding).");
        using var scope = NewDisposeScope();
        long b = frames.shape[0], f = frames.shape[1], t = frames.shape[2], d = frames.shape[3];
        long full = f / g, rest = f % g, groups = full + (rest > 0 ? 1 : 0);
        if (group_embedding is not null && groups > Config.MaxGroups)
            throw new ArgumentException($"{f} frames in groups of {g} make {groups} aggregated frames, but the aggregator has group embeddings for {Config.MaxGroups} (max_groups).");
        // Per frame: the time embedding of its slot in the group (+ the embedding of its group), added to all its tokens.
        long[] slots = new long[f], ofGroup = new long[f];
        for (long i = 0; i < f; i++) { slots[i] = i % g; ofGroup[i] = i / g; }
        var perFrame = time_embedding.index_select(0, torch.tensor(slots, device: time_embedding.device));
        if (group_embedding is not null) perFrame = Scalars.Add(perFrame, group_embedding.index_select(0, torch.tensor(ofGroup, device: group_embedding.device)));
        var x = Scalars.Add(frames.to_type(latents.dtype), perFrame.view(1, f, 1, d));          // [B, F, T, D]
        var outputs = new List<Tensor>();
        if (full > 0) outputs.Add(Group(x.narrow(1, 0, full * g).reshape(b * full, g, t, d)).view(b, full, -1, d));
        if (rest > 0) outputs.Add(Group(x.narrow(1, full * g, rest)).unsqueeze(1));
        var y = outputs.Count == 1 ? outputs[0] : torch.cat(outputs.ToArray(), 1);             // [B, groups, L, D]
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>One group per batch row, embeddings already added: [N, G, T, D] → [N, L, D].</summary>
    Tensor Group(Tensor x)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0], g = x.shape[1], t = x.shape[2], d = x.shape[3];
        Tensor media, lat;
        if (Config.PerPosition)
        {
            if (t != latents.shape[0])
                throw new ArgumentException($"per-position merging needs {latents.shape[0]} tokens per frame (tokens_per_frame); got {t}.");
            media = x.permute(0, 2, 1, 3).reshape(n * t, g, d);                                 // [N·T, G, D]: one place, G frames
            // Position t's query starts from its learned latent plus the mean of the group's tokens there.
            lat = Scalars.Add(media.mean(new long[] { 1 }, keepdim: true),
                latents.unsqueeze(0).expand(n, -1, -1).reshape(n * t, 1, d));                  // [N·T, 1, D]
        }
        else
        {
            media = x.reshape(n, g * t, d);                                                     // [N, G·T, D]
            lat = latents.unsqueeze(0).expand(n, -1, -1);                                       // [N, L, D]
        }
        foreach (var layer in layers) lat = layer.Forward(media, lat);
        var y = norm.forward(lat);
        if (Config.PerPosition) y = y.view(n, t, d);
        if (Config.PlaceCode)
        {
            _placeCode ??= Config.PlaceCodeValues();
            y = Scalars.Add(y, torch.tensor(_placeCode, new long[] { t, d }, dtype: ScalarType.Float32, device: y.device).to_type(y.dtype));
        }
        return y.MoveToOuterDisposeScope();
    }
}

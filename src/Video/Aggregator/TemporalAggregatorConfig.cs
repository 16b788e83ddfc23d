using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Video;

/// <summary>
/// Shape of the temporal aggregator, a Flamingo-style perceiver resampler (Llama 3 paper §7.2). The paper publishes
/// neither the number of latents nor the depth; the defaults below are this library's choice: one latent per token
/// position of a frame (so an aggregated frame keeps a frame's shape), 2 layers, time embeddings for groups of up to 32
/// frames; heads, head width and the FFN factor are open_flamingo's (8 × 64, 4×).
/// </summary>
public sealed record TemporalAggregatorConfig
{
    /// <summary>Width of the frame features read and of the aggregated features written (the image projector's output = text hidden size).</summary>
    public required int Dim { get; init; }
    /// <summary>Tokens per frame from the image path (tiles × tokens per tile, e.g. 4 × 1601 = 6404 for 560-px tiles).</summary>
    public required int TokensPerFrame { get; init; }
    /// <summary>Learned latent queries = tokens per aggregated frame; null = <see cref="TokensPerFrame"/>.</summary>
    public int? NumLatents { get; init; }
    /// <summary>Perceiver layers (attention + FFN), default 2.</summary>
    public int NumLayers { get; init; } = 2;
    /// <summary>Attention heads (8).</summary>
    public int NumHeads { get; init; } = 8;
    /// <summary>Width per head (64).</summary>
    public int HeadDim { get; init; } = 64;
    /// <summary>FFN hidden width = Dim × this (4).</summary>
    public int FfnMultiplier { get; init; } = 4;
    /// <summary>Consecutive frames merged into one aggregated frame: 32 (SFT: 64 frames → 2); 16 in video pretraining.</summary>
    public int FramesPerGroup { get; init; } = 32;
    /// <summary>Rows of the learned time embedding = the largest group (32).</summary>
    public int MaxFramesPerGroup { get; init; } = 32;
    /// <summary>
    /// Rows of the learned group embedding (open_flamingo's per-media time embedding <c>media_time_embs</c>), added to
    /// every token of a group's frames so that the aggregated frames keep their order for the video cross-attention
    /// (without it, swapping two groups of frames swaps two sets of aggregated tokens that the cross-attention cannot tell
    /// apart). 0 = none (folders written before the field existed); the presets hold 4 (up to 4 × 32 = 128 frames).
    /// </summary>
    public int MaxGroups { get; init; }
    /// <summary>LayerNorm epsilon (1e-5).</summary>
    public double LayerNormEps { get; init; } = 1e-5;
    /// <summary>
    /// How a group's frames are merged (JSON <c>merge</c>). <see cref="MergeLatents"/> (the default, open_flamingo's
    /// flattened form): the latents attend to all G·T tokens of the group, so an aggregated token may mix any places of
    /// the frames. <see cref="MergePerPosition"/>: each token position of the frame is merged across the group's frames
    /// on its own: the latent of position t (one per position, so <see cref="NumLatents"/> = <see cref="TokensPerFrame"/>)
    /// plus the mean of the group's tokens at t attends to those G tokens (and to itself), so the aggregated frame keeps
    /// the frame's token layout and each of its tokens says what happened at one place over the group's frames.
    /// </summary>
    public string Merge { get; init; } = MergeLatents;

    /// <summary>
    /// Per-position merging only (JSON <c>place_code</c>): adds to every aggregated token a fixed 2-D Fourier code of its
    /// place in the frame (sines and cosines of the patch centre's x and y at Dim / 4 frequencies, 0 for the tiles' class
    /// tokens), so the video cross-attention, which reads a set of tokens, can tell where each one is. Needs
    /// <see cref="TilesPerFrame"/>; no weights, so no checkpoint key.
    /// </summary>
    public bool PlaceCode { get; init; }
    /// <summary>Tiles per frame, a square grid g × g in row-major order, each a class token then p × p patches row-major
    /// (JSON <c>tiles_per_frame</c>; the video model fits every frame into the largest square grid); needed by
    /// <see cref="PlaceCode"/>, null = unknown.</summary>
    public int? TilesPerFrame { get; init; }

    /// <summary><see cref="Merge"/> value: latents attend to all tokens of a group (default).</summary>
    public const string MergeLatents = "latents";
    /// <summary><see cref="Merge"/> value: each token position is merged across the group's frames on its own.</summary>
    public const string MergePerPosition = "per_position";

    /// <summary>True when <see cref="Merge"/> is <see cref="MergePerPosition"/>.</summary>
    public bool PerPosition => Merge == MergePerPosition;

    /// <summary>Number of latents actually used.</summary>
    public int Latents => NumLatents ?? TokensPerFrame;

    /// <summary>
    /// The fixed place code [TokensPerFrame × Dim] (row-major) of <see cref="PlaceCode"/>: for the patch at column x and
    /// row y of the whole frame (g·p patches a side), u = (x + ½)/(g·p), v = (y + ½)/(g·p), and frequencies
    /// ω_k = π(k + 1)/2 for k &lt; Dim/4, the row is [sin ω_k u, cos ω_k u, sin ω_k v, cos ω_k v] for every k in turn;
    /// class tokens get zeros.
    /// </summary>
    public float[] PlaceCodeValues()
    {
        int tiles = TilesPerFrame ?? throw new InvalidOperationException("tiles_per_frame is not set.");
        var (g, perTile, p) = TileGrid(tiles);
        int k = Dim / 4, side = g * p;
        var code = new float[(long)TokensPerFrame * Dim];
        for (int tile = 0; tile < tiles; tile++)
            for (int j = 1; j < perTile; j++)
            {
                int x = tile % g * p + (j - 1) % p, y = tile / g * p + (j - 1) / p;
                double u = (x + 0.5) / side, v = (y + 0.5) / side;
                long row = ((long)tile * perTile + j) * Dim;
                for (int f = 0; f < k; f++)
                {
                    double w = Math.PI * (f + 1) / 2;
                    code[row + 4 * f] = (float)Math.Sin(w * u);
                    code[row + 4 * f + 1] = (float)Math.Cos(w * u);
                    code[row + 4 * f + 2] = (float)Math.Sin(w * v);
                    code[row + 4 * f + 3] = (float)Math.Cos(w * v);
                }
            }
        return code;
    }

    // Tiles a side, tokens per tile and patches a side of a tile, for TilesPerFrame = tiles.
    (int G, int PerTile, int P) TileGrid(int tiles)
    {
        int perTile = TokensPerFrame / tiles;
        return ((int)Math.Round(Math.Sqrt(tiles)), perTile, (int)Math.Round(Math.Sqrt(Math.Max(0, perTile - 1))));
    }

    /// <summary>Aggregated frames produced from <paramref name="frames"/> frames: ceil(frames / group).</summary>
    public int GroupsFor(int frames) => (frames + FramesPerGroup - 1) / FramesPerGroup;

    /// <summary>Checks ranges; throws <see cref="ConfigException"/> naming the field.</summary>
    public TemporalAggregatorConfig Validate(string source = "video aggregator config")
    {
        void Range(string name, long v, long lo, long hi)
        {
            if (v < lo || v > hi) throw new ConfigException($"{source}: {name} = {v} is out of range ({lo}..{hi}).");
        }
        Range("dim", Dim, 1, 1 << 17);
        Range("tokens_per_frame", TokensPerFrame, 1, 1 << 20);
        Range("num_latents", Latents, 1, 1 << 20);
        Range("num_layers", NumLayers, 1, 256);
        Range("num_heads", NumHeads, 1, 1024);
        Range("head_dim", HeadDim, 1, 4096);
        Range("ffn_multiplier", FfnMultiplier, 1, 64);
        Range("max_frames_per_group", MaxFramesPerGroup, 1, 4096);
        Range("frames_per_group", FramesPerGroup, 1, MaxFramesPerGroup);
        Range("max_groups", MaxGroups, 0, 4096);
        if (Merge is not (MergeLatents or MergePerPosition))
            throw new ConfigException($"{source}: merge = '{Merge}' is not known; use '{MergeLatents}' or '{MergePerPosition}'.");
        if (PerPosition && Latents != TokensPerFrame)
            throw new ConfigException($"{source}: merge = '{MergePerPosition}' needs one latent per token position, but num_latents = {Latents} and tokens_per_frame = {TokensPerFrame}.");
        if (TilesPerFrame is { } tiles)
        {
            var (g, perTile, p) = tiles < 1 ? (0, 0, 0) : TileGrid(tiles);
            if (tiles < 1 || TokensPerFrame % tiles != 0 || g * g != tiles)
                throw new ConfigException($"{source}: tiles_per_frame = {tiles} must be a square number that divides tokens_per_frame = {TokensPerFrame}.");
            if (p * p != perTile - 1)
                throw new ConfigException($"{source}: tokens per tile = {perTile} is not a class token plus a square of patches.");
        }
        if (PlaceCode && !(PerPosition && TilesPerFrame is not null))
            throw new ConfigException($"{source}: place_code needs merge = '{MergePerPosition}' and tiles_per_frame.");
        if (PlaceCode && Dim % 4 != 0)
            throw new ConfigException($"{source}: place_code needs dim = {Dim} to be a multiple of 4.");
        if (!double.IsFinite(LayerNormEps) || LayerNormEps <= 0 || LayerNormEps > 1)
            throw new ConfigException($"{source}: layer_norm_eps = {LayerNormEps} must be in (0, 1].");
        return this;
    }
}

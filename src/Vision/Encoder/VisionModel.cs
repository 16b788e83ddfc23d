using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision;

/// <summary>
/// The Llama 3.2 Vision image encoder (HF <c>MllamaVisionModel</c>; module names are its checkpoint keys under
/// <c>vision_model.</c>): patch embedding → pre-tile embedding → class token → gated positional embedding →
/// layernorm_pre → pad tokens to a multiple of 8 → local transformer over all tiles of an image (keeping the states
/// entering the intermediate layers) → layernorm_post → post-tile embedding → gated global transformer → drop pads →
/// [global output | intermediates interleaved channel by channel].
/// </summary>
public sealed class VisionModel : nn.Module
{
#pragma warning disable IDE1006
    /// <summary>Conv patch embedding.</summary>
    public readonly PatchEmbedding patch_embedding;
    /// <summary>Class token [D].</summary>
    public readonly Parameter class_embedding;
    /// <summary>Gated positional + tile positional embedding.</summary>
    public readonly GatedPositionalEmbedding gated_positional_embedding;
    /// <summary>Tile embedding added before the class token.</summary>
    public readonly AspectRatioEmbedding pre_tile_positional_embedding;
    /// <summary>Tile embedding added before the global transformer.</summary>
    public readonly AspectRatioEmbedding post_tile_positional_embedding;
    /// <summary>LayerNorm after the embeddings.</summary>
    public readonly VisionLayerNorm layernorm_pre;
    /// <summary>LayerNorm after the local transformer.</summary>
    public readonly VisionLayerNorm layernorm_post;
    /// <summary>Local (ungated) transformer.</summary>
    public readonly VisionTransformer transformer;
    /// <summary>Global (gated) transformer.</summary>
    public readonly VisionTransformer global_transformer;
#pragma warning restore IDE1006

    /// <summary>The configuration.</summary>
    public VisionConfig Config { get; }

    /// <summary>
    /// Epsilon of <see cref="layernorm_pre"/> and <see cref="layernorm_post"/>: 1e-5 (HF <c>nn.LayerNorm(hidden_size)</c>),
    /// independent of <see cref="VisionConfig.NormEps"/>, which the encoder layers use.
    /// </summary>
    public const double OuterNormEps = 1e-5;

    /// <summary>Creates the encoder with uninitialised weights.</summary>
    public VisionModel(VisionConfig config, Device? device, ScalarType dtype) : base("VisionModel")
    {
        Config = config.Validate();
        patch_embedding = new PatchEmbedding(config, device, dtype);
        class_embedding = Layers.Param(new long[] { config.HiddenSize }, device, dtype);
        gated_positional_embedding = new GatedPositionalEmbedding(config, device, dtype);
        pre_tile_positional_embedding = new AspectRatioEmbedding(config, device, dtype);
        post_tile_positional_embedding = new AspectRatioEmbedding(config, device, dtype);
        // HF builds these two as nn.LayerNorm(hidden_size): PyTorch's default eps, whatever norm_eps says (norm_eps is
        // the encoder layers').
        layernorm_pre = new VisionLayerNorm(config.HiddenSize, OuterNormEps, device, dtype);
        layernorm_post = new VisionLayerNorm(config.HiddenSize, OuterNormEps, device, dtype);
        transformer = new VisionTransformer(config, config.NumHiddenLayers, false, device, dtype);
        global_transformer = new VisionTransformer(config, config.NumGlobalLayers, true, device, dtype);
        RegisterComponents();
    }

    /// <summary>
    /// Encodes images. pixels [B, N, tiles, C, T, T], aspect-ratio ids [B, N] and mask [B, N, tiles] (int64) →
    /// features [B, N, tiles, tokens, OutputDim] in the weight dtype.
    /// </summary>
    public Tensor Forward(Tensor pixelValues, Tensor aspectRatioIds, Tensor aspectRatioMask)
    {
        using var scope = NewDisposeScope();
        var c = Config;
        var dev = class_embedding.device;
        var dtype = class_embedding.dtype;
        long b = pixelValues.shape[0], n = pixelValues.shape[1], tiles = pixelValues.shape[2];
        if (pixelValues.dim() != 6) throw new ArgumentException($"pixel values must be [B, N, tiles, C, T, T], got [{string.Join(", ", pixelValues.shape)}].");
        if (tiles != c.MaxNumTiles) throw new ArgumentException($"pixel values have {tiles} tile slots; the encoder expects {c.MaxNumTiles}.");
        if (pixelValues.shape[3] != c.NumChannels || pixelValues.shape[4] != c.ImageSize || pixelValues.shape[5] != c.ImageSize)
            throw new ArgumentException($"pixel tiles are [{pixelValues.shape[3]}, {pixelValues.shape[4]}, {pixelValues.shape[5]}]; the encoder expects [{c.NumChannels}, {c.ImageSize}, {c.ImageSize}] (preprocess with the model's tile size).");
        long m = b * n, d = c.HiddenSize;
        int tok = c.TokensPerTile, padded = c.PaddedTokensPerTile;
        var ids = aspectRatioIds.to(ScalarType.Int64, dev).reshape(m);
        var px = pixelValues.to(dtype, dev).reshape(m * tiles, c.NumChannels, c.ImageSize, c.ImageSize);

        var x = patch_embedding.forward(px).reshape(m, tiles, tok - 1, d);                      // [M, 4, g², D]
        x = pre_tile_positional_embedding.Forward(x, ids);
        var cls = class_embedding.view(1, 1, 1, d).expand(m, tiles, 1, d);
        x = torch.cat(new[] { cls, x }, 2);                                                      // [M, 4, tok, D]
        x = gated_positional_embedding.Forward(x, ids);
        x = layernorm_pre.forward(x);
        x = nn.functional.pad(x, new long[] { 0, 0, 0, padded - tok });                          // [M, 4, pad, D]
        var mask = EncoderMask(aspectRatioMask.to(ScalarType.Int64, dev).reshape(m, tiles), tok, padded);
        x = x.reshape(m, tiles * padded, d);

        var (local, kept) = transformer.Forward(x, mask, c.IntermediateLayersIndices);
        var h = layernorm_post.forward(local).reshape(m, tiles, padded, d);
        h = post_tile_positional_embedding.Forward(h, ids).reshape(m, tiles * padded, d);
        var (global, _) = global_transformer.Forward(h, mask);

        var final = global.reshape(m, tiles, padded, d).narrow(2, 0, tok);
        var inter = torch.stack(kept, -1).reshape(m, tiles, padded, d * kept.Count).narrow(2, 0, tok);
        var features = torch.cat(new[] { final, inter }, -1);
        return features.reshape(b, n, tiles, tok, c.OutputDim).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The encoder attention mask as the references build it: a token is "padding" when it is a pad token or in an unused
    /// tile slot, and only pairs where BOTH query and key are padding are masked. Returns [M, 1, L, L] bool (true = attend).
    /// </summary>
    internal static Tensor EncoderMask(Tensor tileMask, int tokens, int padded)
    {
        using var scope = NewDisposeScope();
        long m = tileMask.shape[0], tiles = tileMask.shape[1];
        using var first = ((long)tokens).ToScalar();
        var tokenIsPad = Scalars.Arange(0, padded, tileMask.device).ge(first).view(1, 1, padded);
        var pad = tileMask.eq(Scalars.Zero).view(m, tiles, 1).logical_or(tokenIsPad).reshape(m, tiles * padded);
        var both = pad.unsqueeze(2).logical_and(pad.unsqueeze(1));
        return both.logical_not().unsqueeze(1).MoveToOuterDisposeScope();
    }
}

using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision;

/// <summary>
/// HF <c>MllamaPrecomputedPositionEmbedding</c>: <c>x + (1 − tanh g)·P + tanh g·P_tile[aspect id]</c>, with P [tokens, D]
/// shared by all tiles and the per-aspect-ratio table <c>tile_embedding</c> [max_id + 1, tiles·tokens·D].
/// </summary>
public sealed class GatedPositionalEmbedding : nn.Module
{
    readonly int _tiles, _tokens, _dim;
#pragma warning disable IDE1006
    /// <summary>Gate [1].</summary>
    public readonly Parameter gate;
    /// <summary>Per-token positional embedding [tokens, D].</summary>
    public readonly Parameter embedding;
    /// <summary>Per-aspect-ratio tile table (key <c>tile_embedding.weight</c>).</summary>
    public readonly TokenEmbedding tile_embedding;
#pragma warning restore IDE1006

    /// <summary>Creates the embedding (weights uninitialised).</summary>
    public GatedPositionalEmbedding(VisionConfig c, Device? device, ScalarType dtype) : base("GatedPositionalEmbedding")
    {
        _tiles = c.MaxNumTiles; _tokens = c.TokensPerTile; _dim = c.HiddenSize;
        gate = Layers.Param(new long[] { 1 }, device, dtype);
        embedding = Layers.Param(new long[] { _tokens, _dim }, device, dtype);
        tile_embedding = new TokenEmbedding(c.MaxAspectRatioId + 1, (long)_tiles * _tokens * _dim, device, dtype);
        RegisterComponents();
    }

    /// <summary>x [M, tiles, tokens, D], ids [M] → [M, tiles, tokens, D].</summary>
    public Tensor Forward(Tensor x, Tensor aspectRatioIds)
    {
        using var scope = NewDisposeScope();
        var g = gate.tanh();
        var h = Scalars.Add(x, (g.neg().add_(Scalars.One, Scalars.One) * embedding).view(1, 1, _tokens, _dim));
        var tile = tile_embedding.weight.index_select(0, aspectRatioIds).view(-1, _tiles, _tokens, _dim);
        return Scalars.Add(h, g * tile).MoveToOuterDisposeScope();
    }
}

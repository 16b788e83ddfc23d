using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Vision;

/// <summary>
/// HF <c>MllamaPrecomputedAspectRatioEmbedding</c> (pre/post tile positional embedding): one vector per tile slot of the
/// image's aspect ratio, <c>tanh(gate)</c>-scaled and added to every token of that tile.
/// </summary>
public sealed class AspectRatioEmbedding : nn.Module
{
    readonly int _tiles, _dim;
#pragma warning disable IDE1006
    /// <summary>Table [max_id + 1, tiles·D] (key <c>embedding.weight</c>).</summary>
    public readonly TokenEmbedding embedding;
    /// <summary>Gate [1].</summary>
    public readonly Parameter gate;
#pragma warning restore IDE1006

    /// <summary>Creates the embedding (weights uninitialised).</summary>
    public AspectRatioEmbedding(VisionConfig c, Device? device, ScalarType dtype) : base("AspectRatioEmbedding")
    {
        _tiles = c.MaxNumTiles; _dim = c.HiddenSize;
        embedding = new TokenEmbedding(c.MaxAspectRatioId + 1, (long)_tiles * _dim, device, dtype);
        gate = Layers.Param(new long[] { 1 }, device, dtype);
        RegisterComponents();
    }

    /// <summary>x [M, tiles, tokens, D], ids [M] → [M, tiles, tokens, D].</summary>
    public Tensor Forward(Tensor x, Tensor aspectRatioIds)
    {
        using var scope = NewDisposeScope();
        var e = embedding.weight.index_select(0, aspectRatioIds).view(-1, _tiles, 1, _dim);
        return Scalars.Add(x, gate.tanh() * e).MoveToOuterDisposeScope();
    }
}

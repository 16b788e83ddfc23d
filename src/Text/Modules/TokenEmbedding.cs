using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>Token embedding table [rows, dim], checkpoint key <c>weight</c>.</summary>
public sealed class TokenEmbedding : nn.Module<Tensor, Tensor>
{
    /// <summary>The table.</summary>
    public readonly TorchSharp.Modules.Parameter weight;

    /// <summary>Creates the table (uninitialised).</summary>
    public TokenEmbedding(long rows, long dim, Device? device, ScalarType dtype) : base("TokenEmbedding")
    {
        weight = Layers.Param(new[] { rows, dim }, device, dtype);
        RegisterComponents();
    }

    /// <summary>ids [B, T] int64 → [B, T, dim].</summary>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var flat = ids.reshape(-1);
        return weight.index_select(0, flat).view(ids.shape[0], ids.shape[1], -1).MoveToOuterDisposeScope();
    }
}

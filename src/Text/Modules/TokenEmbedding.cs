using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>Token embedding table [rows, dim], checkpoint key <c>weight</c>.</summary>
public sealed class TokenEmbedding : nn.Module<Tensor, Tensor>
{
    /// <summary>The table.</summary>
    public readonly TorchSharp.Modules.Parameter weight;

    /// <summary>q8 scales of the table (buffer <c>weight_scale</c>), or null when the table is not quantized.</summary>
    public Tensor? WeightScale { get; }

    readonly ScalarType _dtype;

    /// <summary>Creates the table (uninitialised).</summary>
    public TokenEmbedding(long rows, long dim, Device? device, ScalarType dtype) : this(rows, dim, device, dtype, false) { }

    /// <summary>Creates the table (uninitialised); <paramref name="q8"/> stores it as int8 rows with f16 block scales (<see cref="Q8"/>), looked up in <paramref name="dtype"/>.</summary>
    public TokenEmbedding(long rows, long dim, Device? device, ScalarType dtype, bool q8) : base("TokenEmbedding")
    {
        _dtype = dtype;
        if (q8)
        {
            var (q, s) = QuantizedLayers.Empty(rows, dim, device);
            weight = new TorchSharp.Modules.Parameter(q, requires_grad: false);
            WeightScale = s;
            register_buffer("weight" + QuantizedLayers.ScaleSuffix, s);
        }
        else weight = Layers.Param(new[] { rows, dim }, device, dtype);
        RegisterComponents();
    }

    /// <summary>ids [B, T] int64 → [B, T, dim].</summary>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var flat = ids.reshape(-1);
        if (WeightScale is not null)
            return Q8.Dequantize(weight.index_select(0, flat), WeightScale.index_select(0, flat), _dtype)
                .view(ids.shape[0], ids.shape[1], -1).MoveToOuterDisposeScope();
        return weight.index_select(0, flat).view(ids.shape[0], ids.shape[1], -1).MoveToOuterDisposeScope();
    }
}

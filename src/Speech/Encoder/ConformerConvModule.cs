using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech;

/// <summary>
/// Conformer convolution module (its pre-norm lives in the layer): pointwise conv d → 2d, GLU, depthwise conv (kernel k,
/// same padding), LayerNorm over channels, Swish, pointwise conv d → d. Padded frames are zeroed before every
/// convolution, so a padded batch row equals the same utterance run alone.
/// </summary>
public sealed class ConformerConvModule : nn.Module
{
#pragma warning disable IDE1006 // checkpoint key names
    /// <summary>Pointwise expansion [2d, d, 1].</summary>
    public readonly Conv1dLayer pointwise_conv1;
    /// <summary>Depthwise conv [d, 1, k].</summary>
    public readonly Conv1dLayer depthwise_conv;
    /// <summary>LayerNorm over channels after the depthwise conv.</summary>
    public readonly LayerNorm norm;
    /// <summary>Pointwise projection [d, d, 1].</summary>
    public readonly Conv1dLayer pointwise_conv2;
#pragma warning restore IDE1006

    /// <summary>Creates the module (weights uninitialised).</summary>
    public ConformerConvModule(int dim, int kernel, double eps, Device? device, ScalarType dtype) : base("ConformerConvModule")
    {
        pointwise_conv1 = new Conv1dLayer(dim, 2 * dim, 1, 1, 0, 1, device, dtype);
        depthwise_conv = new Conv1dLayer(dim, dim, kernel, 1, kernel / 2, dim, device, dtype);
        norm = nn.LayerNorm(dim, eps, device: device, dtype: dtype);
        pointwise_conv2 = new Conv1dLayer(dim, dim, 1, 1, 0, 1, device, dtype);
        RegisterComponents();
    }

    /// <summary>x [B, T, d] (already normed), valid [B, T, 1] (1 = real frame, 0 = padding) or null → [B, T, d].</summary>
    public Tensor Forward(Tensor x, Tensor? valid)
    {
        using var scope = NewDisposeScope();
        if (valid is not null) x = x * valid;
        var h = pointwise_conv1.forward(x.transpose(1, 2));               // [B, 2d, T]
        h = nn.functional.glu(h, 1);                                      // [B, d, T]
        if (valid is not null) h = h * valid.transpose(1, 2);
        h = depthwise_conv.forward(h);                                    // [B, d, T]
        h = nn.functional.silu(norm.forward(h.transpose(1, 2)));          // [B, T, d]
        if (valid is not null) h = h * valid;
        h = pointwise_conv2.forward(h.transpose(1, 2)).transpose(1, 2);   // [B, T, d]
        return h.MoveToOuterDisposeScope();
    }
}

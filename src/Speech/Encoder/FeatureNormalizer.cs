using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech;

/// <summary>
/// Per-mel-bin mean/variance normalisation with statistics measured on training data and stored in the checkpoint
/// (BEST-RQ normalises its input; per-bin statistics from the training data are this library's choice): <c>(x − mean) /
/// sqrt(var + 1e-5)</c>. The statistics are frozen (not trained by gradients).
/// </summary>
public sealed class FeatureNormalizer : nn.Module<Tensor, Tensor>
{
    /// <summary>Variance floor added before the square root.</summary>
    public const double Eps = 1e-5;
    static readonly Scalar EpsScalar = Eps.ToScalar();
#pragma warning disable IDE1006 // checkpoint key names
    /// <summary>Per-bin mean [bins] (f32).</summary>
    public readonly Parameter mean;
    /// <summary>Per-bin variance [bins] (f32).</summary>
    public readonly Parameter var;
#pragma warning restore IDE1006

    /// <summary>Creates identity statistics' storage (uninitialised; <see cref="Reset"/> sets mean 0, var 1).</summary>
    public FeatureNormalizer(int bins, Device? device) : base("FeatureNormalizer")
    {
        mean = new Parameter(torch.empty(bins, dtype: ScalarType.Float32, device: device), requires_grad: false);
        var = new Parameter(torch.empty(bins, dtype: ScalarType.Float32, device: device), requires_grad: false);
        RegisterComponents();
    }

    /// <summary>Sets mean 0 and variance 1 (identity up to eps).</summary>
    public void Reset()
    {
        using var noGrad = torch.no_grad();
        mean.zero_();
        var.fill_(Scalars.One);
    }

    /// <summary>
    /// Measures per-bin mean and variance over the real frames of <paramref name="batches"/> (features [B, T, bins] with
    /// frame counts [B]) and stores them.
    /// </summary>
    public void Fit(IEnumerable<(Tensor Features, Tensor Lengths)> batches)
    {
        using var noGrad = torch.no_grad();
        using var scope = NewDisposeScope();
        long bins = mean.shape[0];
        var sum = torch.zeros(bins, dtype: ScalarType.Float64);
        var sumSq = torch.zeros(bins, dtype: ScalarType.Float64);
        double count = 0;
        foreach (var (f, len) in batches)
        {
            using var inner = NewDisposeScope();
            var valid = SequenceMask.Valid(len, f.shape[1], f.device).unsqueeze(-1).to(ScalarType.Float64);
            var x = f.to(ScalarType.Float64) * valid;
            sum.add_(x.sum(new long[] { 0, 1 }).cpu(), Scalars.One);
            sumSq.add_((x * x).sum(new long[] { 0, 1 }).cpu(), Scalars.One);
            count += valid.sum().item<double>();
        }
        if (count < 2) throw new ArgumentException("feature statistics need at least two frames.");
        using var n = count.ToScalar();
        var m = sum.div(n);
        var v = (sumSq.div(n) - m * m).clamp_min(Scalars.Zero);
        mean.copy_(m.to(ScalarType.Float32));
        var.copy_(v.to(ScalarType.Float32));
    }

    /// <summary>x [B, T, bins] → normalised, in x's dtype.</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = (x.to(ScalarType.Float32) - mean) * torch.rsqrt(var.add(EpsScalar, Scalars.One));
        return y.to_type(x.dtype).MoveToOuterDisposeScope();
    }
}

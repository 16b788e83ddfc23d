using Llama3.Multimodal.Text;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Demo;

/// <summary>
/// A linear read-out for diagnostics: ridge regression from feature vectors to one-hot class labels (solved in its dual
/// form, so vectors may be much longer than there are samples), fitted on the first part of the samples and scored on
/// the rest. Features are standardised with the fitting part's mean and deviation.
/// </summary>
public static class LinearProbe
{
    /// <summary>
    /// Fits on the first <paramref name="trainFraction"/> of the samples with ridge strength <paramref name="lambda"/>
    /// (scaled by dimension / 100) and returns the accuracy on the fitted and on the held-back samples.
    /// </summary>
    public static (double Train, double Test) Fit(IReadOnlyList<float[]> features, IReadOnlyList<int> labels, int classes, double lambda, double trainFraction = 0.75)
    {
        if (features.Count != labels.Count) throw new ArgumentException($"{features.Count} feature vectors but {labels.Count} labels.");
        int m = features.Count, nt = (int)(m * trainFraction);
        if (nt < 1 || nt >= m) throw new ArgumentException($"{m} samples leave no fitting or no held-back part at fraction {trainFraction}.");
        int dim = features[0].Length;
        if (features.Any(f => f.Length != dim)) throw new ArgumentException("feature vectors differ in length.");
        if (labels.Any(l => l < 0 || l >= classes)) throw new ArgumentException($"labels must be in 0..{classes - 1}.");
        using var scope = NewDisposeScope();
        var flat = new double[(long)m * dim];
        for (int i = 0; i < m; i++) for (int j = 0; j < dim; j++) flat[(long)i * dim + j] = features[i][j];
        var x = tensor(flat, new long[] { m, dim });
        var fit = x.narrow(0, 0, nt);
        x = (x - fit.mean(new long[] { 0 })) / Scalars.Add(fit.std(new long[] { 0 }), tensor(1e-6, ScalarType.Float64));   // tensor constants: no temporary scalars
        var truth = tensor(labels.Select(l => (long)l).ToArray());
        var y = nn.functional.one_hot(truth, classes).to(ScalarType.Float64) - tensor(1.0 / classes, ScalarType.Float64);
        var xt = x.narrow(0, 0, nt);
        var gram = xt.matmul(xt.t());
        var ridge = eye(nt, dtype: ScalarType.Float64) * tensor(lambda * dim / 100.0, ScalarType.Float64);
        var alpha = linalg.solve(Scalars.Add(gram, ridge), y.narrow(0, 0, nt));
        var pred = x.matmul(xt.t()).matmul(alpha).argmax(1);
        double Acc(long from, long len) => pred.narrow(0, from, len).eq(truth.narrow(0, from, len)).to(ScalarType.Float64).mean().item<double>();
        return (Acc(0, nt), Acc(nt, m - nt));
    }
}

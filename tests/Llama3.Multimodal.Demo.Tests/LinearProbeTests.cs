using Llama3.Multimodal.Training;
using Xunit;

namespace Llama3.Multimodal.Demo.Tests;

public class LinearProbeTests
{
    static (List<float[]> X, List<int> Y) Data(int n, int dim, int classes, double signal, int seed)
    {
        var rng = new Random(seed);
        var x = new List<float[]>(); var y = new List<int>();
        for (int i = 0; i < n; i++)
        {
            int c = rng.Next(classes);
            var f = new float[dim];
            for (int j = 0; j < dim; j++) f[j] = (float)(rng.NextDouble() * 2 - 1);
            f[c] += (float)signal;                                   // class c lifts feature c
            x.Add(f); y.Add(c);
        }
        return (x, y);
    }

    [Fact]
    public void ReadsLinearlyEncodedClassesFromHeldBackSamples()
    {
        var (x, y) = Data(200, 40, 4, 3.0, 1);
        var (train, test) = LinearProbe.Fit(x, y, 4, 1.0);
        Assert.True(train > 0.95, $"train {train}");
        Assert.True(test > 0.95, $"test {test}");
    }

    [Fact]
    public void LabelsTheFeaturesDoNotCarryStayNearChance()
    {
        var (x, y) = Data(200, 400, 4, 0.0, 2);
        var (train, test) = LinearProbe.Fit(x, y, 4, 0.01);
        Assert.True(train > 0.9, $"train {train}");                  // 150 samples in 400 dimensions: fitted
        Assert.True(test < 0.5, $"test {test}");                     // but not generalised (chance 0.25)
    }

    [Fact]
    public void BadInputIsNamed()
    {
        var (x, y) = Data(20, 4, 4, 1.0, 3);
        Assert.Contains("20 feature vectors but 19 labels", Assert.Throws<ArgumentException>(() => LinearProbe.Fit(x, y.Take(19).ToList(), 4, 1)).Message);
        Assert.Contains("0..2", Assert.Throws<ArgumentException>(() => LinearProbe.Fit(x, y.Select(_ => 3).ToList(), 3, 1)).Message);
        Assert.Contains("no fitting or no held-back part", Assert.Throws<ArgumentException>(() => LinearProbe.Fit(x, y, 4, 1, trainFraction: 1.0)).Message);
        x[5] = new float[3];
        Assert.Contains("differ in length", Assert.Throws<ArgumentException>(() => LinearProbe.Fit(x, y, 4, 1)).Message);
    }
}

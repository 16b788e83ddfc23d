namespace Llama3.Multimodal.Training;

/// <summary>Writes the loss and learning-rate curves (loss on the left axis, lr on the right) as a PNG with ScottPlot.</summary>
public static class CurvePlot
{
    /// <summary>Plots <paramref name="points"/> (step, loss, lr) and optional eval points to <paramref name="path"/>.</summary>
    public static void Write(string path, IReadOnlyList<(long Step, double Loss, double Lr)> points, IReadOnlyList<(long Step, double Loss)>? eval = null, string title = "training")
    {
        if (points.Count == 0) return;
        var plt = new ScottPlot.Plot();
        double[] xs = points.Select(p => (double)p.Step).ToArray();
        var loss = plt.Add.Scatter(xs, points.Select(p => p.Loss).ToArray());
        loss.LegendText = "train loss"; loss.MarkerSize = 0;
        if (eval is { Count: > 0 })
        {
            var ev = plt.Add.Scatter(eval.Select(e => (double)e.Step).ToArray(), eval.Select(e => e.Loss).ToArray());
            ev.LegendText = "eval loss"; ev.MarkerSize = 5;
        }
        var lr = plt.Add.Scatter(xs, points.Select(p => p.Lr).ToArray());
        lr.LegendText = "lr"; lr.MarkerSize = 0;
        lr.Axes.YAxis = plt.Axes.Right;
        plt.Axes.Right.Label.Text = "learning rate";
        plt.Axes.Left.Label.Text = "loss";
        plt.Axes.Bottom.Label.Text = "step";
        plt.Title(title);
        plt.ShowLegend();
        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        string tmp = Path.Combine(dir, "." + Path.GetFileName(path) + ".tmp.png");
        plt.SavePng(tmp, 900, 500);
        File.Move(tmp, path, true);
    }
}

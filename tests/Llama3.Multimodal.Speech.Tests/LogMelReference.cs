namespace Llama3.Multimodal.Speech.Tests;

/// <summary>
/// Independent double-precision log-mel (Whisper's log-mel recipe written out directly: reflect pad 200, periodic Hann
/// 400, a plain DFT per frame, Slaney filters built here from the formulas, log10 clamp, max − 8, (x + 4)/4).
/// </summary>
internal static class LogMelReference
{
    static double HzToMel(double f) => f < 1000 ? 3 * f / 200 : 15 + Math.Log(f / 1000) * 27 / Math.Log(6.4);
    static double MelToHz(double m) => m < 15 ? 200 * m / 3 : 1000 * Math.Exp((m - 15) * Math.Log(6.4) / 27);

    public static double[,] Filters()
    {
        var w = new double[80, 201];
        var pts = Enumerable.Range(0, 82).Select(i => MelToHz(HzToMel(8000) * i / 81)).ToArray();
        for (int m = 0; m < 80; m++)
            for (int k = 0; k < 201; k++)
            {
                double f = k * 40.0;
                double up = (f - pts[m]) / (pts[m + 1] - pts[m]), down = (pts[m + 2] - f) / (pts[m + 2] - pts[m + 1]);
                w[m, k] = Math.Max(0, Math.Min(up, down)) * 2 / (pts[m + 2] - pts[m]);
            }
        return w;
    }

    public static double[,] Compute(float[] x)
    {
        int n = x.Length, t = n / 160;
        var padded = new double[n + 400];
        for (int i = 0; i < padded.Length; i++)
        {
            int j = i - 200;
            if (j < 0) j = -j;
            if (j >= n) j = 2 * (n - 1) - j;
            padded[i] = x[j];
        }
        var win = Enumerable.Range(0, 400).Select(i => 0.5 - 0.5 * Math.Cos(2 * Math.PI * i / 400)).ToArray();
        var cos = new double[400]; var sin = new double[400];
        for (int i = 0; i < 400; i++) { cos[i] = Math.Cos(2 * Math.PI * i / 400); sin[i] = Math.Sin(2 * Math.PI * i / 400); }
        var fb = Filters();
        var logs = new double[t, 80];
        double max = double.NegativeInfinity;
        var power = new double[201];
        var frame = new double[400];
        for (int f = 0; f < t; f++)
        {
            for (int i = 0; i < 400; i++) frame[i] = padded[f * 160 + i] * win[i];
            for (int k = 0; k < 201; k++)
            {
                double re = 0, im = 0;
                for (int i = 0; i < 400; i++) { int idx = k * i % 400; re += frame[i] * cos[idx]; im -= frame[i] * sin[idx]; }
                power[k] = re * re + im * im;
            }
            for (int m = 0; m < 80; m++)
            {
                double s = 0;
                for (int k = 0; k < 201; k++) s += fb[m, k] * power[k];
                logs[f, m] = Math.Log10(Math.Max(s, 1e-10));
                max = Math.Max(max, logs[f, m]);
            }
        }
        for (int f = 0; f < t; f++)
            for (int m = 0; m < 80; m++) logs[f, m] = (Math.Max(logs[f, m], max - 8) + 4) / 4;
        return logs;
    }
}

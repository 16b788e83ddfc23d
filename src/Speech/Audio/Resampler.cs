namespace Llama3.Multimodal.Speech;

/// <summary>
/// Band-limited sample-rate conversion by a Kaiser-windowed sinc filter in polyphase form (exact for the rational ratio
/// of two integer rates). The low-pass cut-off sits at <see cref="Rolloff"/> × the lower Nyquist frequency, so content
/// above the new Nyquist frequency is suppressed instead of folding back (aliasing).
/// </summary>
public sealed class Resampler
{
    /// <summary>Zero crossings of the sinc on each side of the centre (filter length ≈ 2·ZeroCrossings / cut-off).</summary>
    public const int ZeroCrossings = 48;
    /// <summary>Cut-off as a fraction of the lower of the two Nyquist frequencies.</summary>
    public const double Rolloff = 0.93;
    /// <summary>Kaiser window β (≈ 90 dB stop-band attenuation).</summary>
    public const double KaiserBeta = 9.0;

    readonly int _up, _down;   // output time step = _down/_up input samples
    readonly int _taps;        // taps per phase
    readonly int _left;        // taps left of the centre sample
    readonly float[] _table;   // [_up, _taps]

    /// <summary>Input rate in Hz.</summary>
    public int InputRate { get; }
    /// <summary>Output rate in Hz.</summary>
    public int OutputRate { get; }

    /// <summary>Designs the filter bank for <paramref name="inputRate"/> → <paramref name="outputRate"/>.</summary>
    public Resampler(int inputRate, int outputRate)
    {
        if (inputRate <= 0) throw new ArgumentOutOfRangeException(nameof(inputRate), $"input rate {inputRate} Hz must be positive.");
        if (outputRate <= 0) throw new ArgumentOutOfRangeException(nameof(outputRate), $"output rate {outputRate} Hz must be positive.");
        InputRate = inputRate; OutputRate = outputRate;
        int g = Gcd(inputRate, outputRate);
        _up = outputRate / g; _down = inputRate / g;
        // Cut-off in cycles per input sample.
        double fc = 0.5 * Math.Min(1.0, (double)outputRate / inputRate) * Rolloff;
        double half = ZeroCrossings / (2 * fc); // half-width in input samples
        _left = (int)Math.Ceiling(half);
        _taps = 2 * _left + 1;
        _table = new float[_up * _taps];
        double i0b = BesselI0(KaiserBeta);
        for (int p = 0; p < _up; p++)
        {
            // Output sample n with (n·_down) mod _up == p lies at input time k0 + p/_up, k0 = floor(n·_down/_up).
            double frac = (double)p / _up;
            double sum = 0;
            var w = new double[_taps];
            for (int j = 0; j < _taps; j++)
            {
                double x = frac - (j - _left); // distance from input sample k0 + (j - _left) to the output time
                double v = 0;
                if (Math.Abs(x) < half)
                {
                    double r = x / half;
                    v = 2 * fc * Sinc(2 * fc * x) * BesselI0(KaiserBeta * Math.Sqrt(1 - r * r)) / i0b;
                }
                w[j] = v; sum += v;
            }
            // Normalise each phase to unit DC gain so a constant stays exactly constant.
            for (int j = 0; j < _taps; j++) _table[p * _taps + j] = (float)(w[j] / sum);
        }
    }

    /// <summary>Output length for <paramref name="inputLength"/> samples: ⌈n·out/in⌉.</summary>
    public long OutputLength(long inputLength) => (inputLength * _up + _down - 1) / _down;

    /// <summary>Resamples one channel. Samples outside the input are taken as zero.</summary>
    public float[] Process(ReadOnlySpan<float> input)
    {
        if (_up == _down) return input.ToArray();
        long n = OutputLength(input.Length);
        var output = new float[n];
        var src = input.ToArray();
        int chunk = 4096;
        int chunks = (int)((n + chunk - 1) / chunk);
        Parallel.For(0, chunks, c =>
        {
            long start = (long)c * chunk, end = Math.Min(n, start + chunk);
            for (long o = start; o < end; o++)
            {
                long t = o * _down;
                long k0 = t / _up;
                int p = (int)(t % _up);
                long first = k0 - _left;
                int jFrom = (int)Math.Max(0, -first), jTo = (int)Math.Min(_taps, src.LongLength - first);
                int row = p * _taps;
                output[o] = Dot(_table.AsSpan(row + jFrom, jTo - jFrom), src.AsSpan((int)(first + jFrom), jTo - jFrom));
            }
        });
        return output;
    }

    /// <summary>Resamples <paramref name="input"/> from <paramref name="inputRate"/> to <paramref name="outputRate"/>.</summary>
    public static float[] Resample(ReadOnlySpan<float> input, int inputRate, int outputRate) =>
        inputRate == outputRate ? input.ToArray() : new Resampler(inputRate, outputRate).Process(input);

    static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var acc = System.Numerics.Vector<float>.Zero;
        int w = System.Numerics.Vector<float>.Count, i = 0;
        for (; i <= a.Length - w; i += w) acc += new System.Numerics.Vector<float>(a[i..]) * new System.Numerics.Vector<float>(b[i..]);
        float sum = System.Numerics.Vector.Sum(acc);
        for (; i < a.Length; i++) sum += a[i] * b[i];
        return sum;
    }

    static double Sinc(double x) => x == 0 ? 1 : Math.Sin(Math.PI * x) / (Math.PI * x);

    static double BesselI0(double x)
    {
        double sum = 1, term = 1, q = x * x / 4;
        for (int k = 1; k < 200; k++)
        {
            term *= q / ((double)k * k);
            sum += term;
            if (term < sum * 1e-17) break;
        }
        return sum;
    }

    static int Gcd(int a, int b) { while (b != 0) (a, b) = (b, a % b); return a; }
}

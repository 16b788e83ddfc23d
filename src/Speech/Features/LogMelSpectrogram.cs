using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech;

/// <summary>
/// The 80-bin log-mel front end (Llama 3 paper §8.2 gives 80 bins; the rest is Whisper's recipe) as tensor ops on any
/// device: 16 kHz audio, <c>torch.stft</c> with n_fft 400, hop 160, periodic Hann window, centred with reflect padding,
/// last frame dropped (T = ⌊N/160⌋); power spectrum; Slaney mel filters 0–8 kHz; <c>log10(max(mel, 1e-10))</c>; clamped
/// to (max − 8); <c>(x + 4)/4</c>. Digital silence gives −1.5 everywhere.
/// </summary>
public sealed class LogMelSpectrogram : IDisposable
{
    /// <summary>FFT size (25 ms at 16 kHz).</summary>
    public const int NFft = 400;
    /// <summary>Hop (10 ms at 16 kHz).</summary>
    public const int Hop = 160;
    /// <summary>Mel bins.</summary>
    public const int MelBins = 80;
    static readonly Scalar PowerFloor = 1e-10.ToScalar(), DynamicRange = 8.0.ToScalar(), Four = 4.0.ToScalar();

    readonly Tensor _window;   // [400] f32
    readonly Tensor _filters;  // [80, 201] f32

    /// <summary>Device the features are computed on.</summary>
    public Device Device { get; }

    /// <summary>Creates the front end on <paramref name="device"/> (CPU by default).</summary>
    public LogMelSpectrogram(Device? device = null)
    {
        Device = device ?? CPU;
        _window = torch.hann_window(NFft, periodic: true, dtype: ScalarType.Float32, device: Device).DetachFromDisposeScope();
        var w = MelFilterBank.Create(AudioLoader.SampleRate, NFft, MelBins, 0, AudioLoader.SampleRate / 2.0);
        var flat = new float[w.Length];
        int bins = w.GetLength(1);
        for (int i = 0; i < MelBins; i++) for (int k = 0; k < bins; k++) flat[i * bins + k] = (float)w[i, k];
        _filters = torch.tensor(flat, new long[] { MelBins, bins }).to(Device).DetachFromDisposeScope();
    }

    /// <summary>Frames for <paramref name="samples"/> samples: ⌊N/160⌋.</summary>
    public static long FrameCount(long samples) => samples / Hop;

    /// <summary>
    /// Log-mel features [T, 80] (f32, on <see cref="Device"/>) of 16 kHz mono <paramref name="audio"/> [N]; needs at least
    /// one hop (160 samples).
    /// </summary>
    public Tensor Compute(Tensor audio)
    {
        if (audio.dim() != 1) throw new ArgumentException($"audio must be 1-D [samples], got [{string.Join(", ", audio.shape)}].");
        long n = audio.shape[0], frames = FrameCount(n);
        if (frames < 1) throw new ArgumentException($"audio of {n} samples is shorter than one 10 ms frame ({Hop} samples).");
        using var scope = NewDisposeScope();
        var x = audio.to(ScalarType.Float32, Device);
        // Reflect padding needs more than n_fft/2 samples; shorter clips get zeros (frame count still ⌊N/160⌋).
        if (n <= NFft / 2) x = nn.functional.pad(x, new long[] { 0, NFft / 2 + 1 - n });
        var spec = torch.stft(x, NFft, Hop, NFft, _window, center: true, pad_mode: PaddingModes.Reflect, return_complex: true); // [201, T+1]
        var power = spec.narrow(1, 0, frames).abs().square();      // [201, T]
        var mel = _filters.matmul(power);                           // [80, T]
        var log = mel.clamp_min(PowerFloor).log10();
        log = torch.maximum(log, log.max().sub(DynamicRange));
        return log.add(Four, Scalars.One).div_(Four).t().contiguous().MoveToOuterDisposeScope(); // [T, 80]
    }

    /// <summary>Log-mel features [T, 80] of 16 kHz mono samples.</summary>
    public Tensor Compute(float[] samples)
    {
        using var scope = NewDisposeScope();
        return Compute(torch.tensor(samples)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Features of several clips as one zero-padded batch [B, T_max, 80] and their frame counts [B] (int64, same device).
    /// </summary>
    public (Tensor Features, Tensor Lengths) ComputeBatch(IReadOnlyList<float[]> clips)
    {
        if (clips.Count == 0) throw new ArgumentException("no clips given.");
        using var scope = NewDisposeScope();
        var feats = clips.Select(Compute).ToList();
        long tMax = feats.Max(f => f.shape[0]);
        var padded = feats.Select(f => nn.functional.pad(f, new long[] { 0, 0, 0, tMax - f.shape[0] })).ToArray();
        var lengths = torch.tensor(feats.Select(f => f.shape[0]).ToArray(), device: Device);
        return (torch.stack(padded).MoveToOuterDisposeScope(), lengths.MoveToOuterDisposeScope());
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _window.Dispose();
        _filters.Dispose();
    }
}

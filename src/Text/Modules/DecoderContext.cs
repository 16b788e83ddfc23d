using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>
/// Everything a decoder block needs besides its input for one forward call: rotary tables, the attention mask in the
/// grouped-query folded form, the cache, and the media states that cross-attention blocks read.
/// </summary>
public sealed class DecoderContext
{
    /// <summary>cos table [B, 1, T, head_dim] f32.</summary>
    public required Tensor Cos { get; init; }
    /// <summary>sin table [B, 1, T, head_dim] f32.</summary>
    public required Tensor Sin { get; init; }
    /// <summary>
    /// Boolean mask (true = may attend) of shape [B, 1, n_rep·T, S] where n_rep = heads / kv heads, or null when no
    /// mask is needed (a single new token attending to a full, unpadded cache).
    /// </summary>
    public Tensor? Mask { get; init; }
    /// <summary>KV cache, or null for a plain forward.</summary>
    public KvCache? Cache { get; init; }
    /// <summary>Media states for cross-attention blocks (set by multimodal models), keyed by modality.</summary>
    public IReadOnlyDictionary<string, object>? Media { get; init; }

    Dictionary<string, DecoderContext>? _onDevice;

    /// <summary>
    /// This context with its tables and mask on <paramref name="device"/> (for models split over several devices);
    /// copies are made once per device and disposed with the caller's dispose scope.
    /// </summary>
    public DecoderContext On(Device device)
    {
        if (Cos.device_type == device.type && Cos.device_index == device.index) return this;
        _onDevice ??= new();
        string key = device.ToString();
        if (!_onDevice.TryGetValue(key, out var c))
        {
            c = new DecoderContext { Cos = Cos.to(device), Sin = Sin.to(device), Mask = Mask?.to(device), Cache = Cache, Media = Media };
            _onDevice[key] = c;
        }
        return c;
    }
}

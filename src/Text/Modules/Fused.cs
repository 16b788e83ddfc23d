using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>When a fused weight (whose row ranges back several parameters) may replace separate projections.</summary>
internal static class Fused
{
    /// <summary>
    /// True at inference (no gradients wanted) while the parameters still alias the fused storage: same device and
    /// dtype, and no one re-assigned them (moving a module to another device or dtype breaks the aliasing, and then the
    /// separate projections are used).
    /// </summary>
    public static bool Usable(Tensor fused, Tensor firstPart) =>
        !torch.is_grad_enabled() && fused.device_type == firstPart.device_type && fused.dtype == firstPart.dtype
        && fused.device_type != DeviceType.META;
}

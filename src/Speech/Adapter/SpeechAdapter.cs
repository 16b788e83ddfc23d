using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech;

/// <summary>
/// Speech adapter (Llama 3 paper §8.2): Conv1d (kernel 3, stride 2, padding 1: 40 ms → 80 ms frames), one pre-norm
/// rotary Transformer layer (<c>x + MHSA(LN x)</c>, <c>x + FFN(LN x)</c>, Swish FFN), a closing LayerNorm, and a linear
/// layer to the decoder's hidden size. Checkpoint keys: <c>speech_model.adapter.</c> + the names below.
/// </summary>
public sealed class SpeechAdapter : nn.Module
{
#pragma warning disable IDE1006 // checkpoint key names
    /// <summary>Downsampling conv [dim, input_dim, 3].</summary>
    public readonly Conv1dLayer conv;
    /// <summary>Pre-norm of the attention.</summary>
    public readonly LayerNorm self_attn_norm;
    /// <summary>Rotary self-attention.</summary>
    public readonly RotarySelfAttention self_attn;
    /// <summary>Pre-norm of the feed-forward.</summary>
    public readonly LayerNorm ffn_norm;
    /// <summary>Feed-forward.</summary>
    public readonly SwishFeedForward ffn;
    /// <summary>Closing LayerNorm.</summary>
    public readonly LayerNorm norm;
    /// <summary>Projection to the decoder width [output_dim, dim].</summary>
    public readonly Linear output_proj;
#pragma warning restore IDE1006

    readonly RotaryEmbedding _rotary;

    /// <summary>The configuration.</summary>
    public SpeechAdapterConfig Config { get; }

    /// <summary>Builds the adapter with uninitialised weights.</summary>
    public SpeechAdapter(SpeechAdapterConfig config, Device? device = null, ScalarType dtype = ScalarType.Float32) : base("SpeechAdapter")
    {
        Config = config.Validate();
        conv = new Conv1dLayer(config.InputDim, config.Dim, config.ConvKernel, config.ConvStride, config.ConvKernel / 2, 1, device, dtype);
        self_attn_norm = nn.LayerNorm(config.Dim, config.LayerNormEps, device: device, dtype: dtype);
        self_attn = new RotarySelfAttention(config.Dim, config.NumHeads, device, dtype);
        ffn_norm = nn.LayerNorm(config.Dim, config.LayerNormEps, device: device, dtype: dtype);
        ffn = new SwishFeedForward(config.Dim, config.FfnDim, device, dtype);
        norm = nn.LayerNorm(config.Dim, config.LayerNormEps, device: device, dtype: dtype);
        output_proj = Layers.Linear(config.Dim, config.OutputDim, true, device, dtype);
        _rotary = new RotaryEmbedding(config.Dim / config.NumHeads, config.RopeTheta, null, config.MaxFrames);
        RegisterComponents();
    }

    /// <summary>Total parameter count (works on the meta device).</summary>
    public long ParameterCount() => parameters().Sum(p => p.numel());

    /// <summary>
    /// Encoder states [B, T, input_dim] with frame counts [B] → decoder-width embeddings [B, ⌈T/2⌉, output_dim]
    /// (padding rows zero) and their counts [B].
    /// </summary>
    public (Tensor Embeddings, Tensor Lengths) Forward(Tensor encoded, Tensor lengths)
    {
        using var scope = NewDisposeScope();
        var device = output_proj.weight.device;
        var dtype = output_proj.weight.dtype;
        long b = encoded.shape[0], t = encoded.shape[1];
        lengths = lengths.to(ScalarType.Int64, device);
        var x = encoded.to(dtype, device) * SequenceMask.Valid(lengths, t, device).unsqueeze(-1).to(dtype);
        x = conv.forward(x.transpose(1, 2)).transpose(1, 2);                     // [B, T2, dim]
        long t2 = x.shape[1];
        var len2 = SequenceMask.CeilDiv(lengths, Config.ConvStride);
        var validBool = SequenceMask.Valid(len2, t2, device);
        var (cos, sin) = _rotary.Tables(Scalars.Arange(0, t2, device).unsqueeze(0), (int)Math.Max(0, t2 - 1));
        bool padded = len2.min().item<long>() < t2;
        x = Scalars.Add(x, self_attn.Forward(self_attn_norm.forward(x), cos, sin, padded ? validBool.view(b, 1, 1, t2) : null));
        x = Scalars.Add(x, ffn.forward(ffn_norm.forward(x)));
        var y = output_proj.forward(norm.forward(x));
        if (padded) y = y * validBool.unsqueeze(-1).to(dtype);
        return (y.MoveToOuterDisposeScope(), len2.MoveToOuterDisposeScope());
    }

    /// <summary>Disposes weights and rotary tables.</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing) _rotary.Dispose();
        base.Dispose(disposing);
    }
}

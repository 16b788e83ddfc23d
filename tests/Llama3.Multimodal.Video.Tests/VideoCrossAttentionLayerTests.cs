using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Video.Tests;

public class VideoCrossAttentionLayerTests
{
    static readonly LlamaConfig Text = new()
    {
        HiddenSize = 32, NumLayers = 1, NumHeads = 4, NumKvHeads = 2, IntermediateSize = 48, VocabSize = 100,
    };

    static VideoCrossAttentionLayer Layer(double attnGate, double mlpGate)
    {
        var layer = new VideoCrossAttentionLayer(Text, CPU, ScalarType.Float32);
        WeightInit.Apply(layer, 21, std: 0.2);
        using var noGrad = torch.no_grad();
        layer.cross_attn_attn_gate.fill_(attnGate);
        layer.cross_attn_mlp_gate.fill_(mlpGate);
        return layer;
    }

    static Tensor Run(VideoCrossAttentionLayer layer, Tensor x, Tensor video, Tensor rowMask)
    {
        var ctx = new DecoderContext
        {
            Cos = torch.zeros(1), Sin = torch.zeros(1),
            Media = new Dictionary<string, object> { [VideoCrossAttentionInputs.MediaKey] = new VideoCrossAttentionInputs { VideoStates = video, RowMask = rowMask } },
        };
        return layer.Forward(x, ctx);
    }

    [Fact]
    public void MatchesTheGatedCrossAttentionFormula()
    {
        using var layer = Layer(0.7, -0.4);
        using var scope = NewDisposeScope();
        var gen = new Generator(2);
        var x = torch.randn(1, 5, 32, generator: gen);
        var video = torch.randn(1, 6, 32, generator: gen);
        var r = torch.tensor(new float[] { 0, 0, 1, 1, 1 }, new long[] { 1, 5, 1 });       // <|video|> at position 2
        var y = Run(layer, x, video, r);

        Tensor Rms(Tensor t, Tensor w) => t * (t.pow(2).mean(new long[] { -1 }, keepdim: true) + 1e-5).rsqrt() * w;
        var a = layer.cross_attn;
        var q = Rms(Rms(x[0], layer.input_layernorm.weight).matmul(a.q_proj.weight.t()).view(5, 4, 8), a.q_norm.weight);          // [T, H, hd]
        var k = Rms(video[0].matmul(a.k_proj.weight.t()).view(6, 2, 8), a.k_norm.weight);      // [S, KV, hd]
        var v = video[0].matmul(a.v_proj.weight.t()).view(6, 2, 8);
        var heads = new List<Tensor>();
        for (int h = 0; h < 4; h++)
        {
            int kvh = h / 2;                                                                      // query heads 0,1 share kv head 0
            var s = q.select(1, h).matmul(k.select(1, kvh).t()) / Math.Sqrt(8);
            heads.Add(s.softmax(-1).matmul(v.select(1, kvh)));
        }
        var attn = torch.cat(heads.ToArray(), 1).matmul(a.o_proj.weight.t()) * r[0];
        var hdn = x[0] + Math.Tanh(0.7) * attn;
        var m = layer.mlp;
        var z = Rms(hdn, layer.post_attention_layernorm.weight);
        var mlp = (nn.functional.silu(z.matmul(m.gate_proj.weight.t())) * z.matmul(m.up_proj.weight.t())).matmul(m.down_proj.weight.t());
        var expected = hdn + Math.Tanh(-0.4) * mlp * r[0];
        Assert.True(y[0].allclose(expected, rtol: 1e-4, atol: 1e-5), $"max diff {(y[0] - expected).abs().max().item<float>()}");
        Assert.True(y[0].narrow(0, 0, 2).allclose(x[0].narrow(0, 0, 2)));                       // rows before the video: identity
    }

    [Fact]
    public void ZeroGatesMakeTheLayerTheIdentity()
    {
        using var layer = Layer(0, 0);
        using var x = torch.randn(2, 4, 32);
        using var video = torch.randn(2, 3, 32);
        using var r = torch.ones(2, 4, 1);
        using var y = Run(layer, x, video, r);
        Assert.True(y.equal(x).all().item<bool>());
    }
}

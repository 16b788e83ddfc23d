using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text.Tests;

/// <summary>The vectorized q8 quantizer against the plain scalar rule, over every source dtype and instruction set.</summary>
[Collection("kernels")]
public class Q8QuantizerTests
{
    // Row lengths below, at and above one block, not multiples of 32, and past the 1024-element widening chunk.
    static readonly (long N, long K)[] Shapes = { (1, 1), (3, 31), (5, 32), (7, 33), (4, 64), (13, 95), (9, 100), (6, 1000), (3, 1057), (2, 2065) };

    static readonly ScalarType[] Sources = { ScalarType.Float32, ScalarType.BFloat16, ScalarType.Float16 };

    static IEnumerable<KernelIsa> Isas() =>
        new[] { KernelIsa.Portable, KernelIsa.Avx2, KernelIsa.Avx512 }.Where(i => i <= WeightKernels.BestIsa);

    static (Tensor Q, Tensor S) Run(Tensor w, KernelIsa? isa)
    {
        var q = empty(w.shape, dtype: ScalarType.Int8);
        var s = empty(new[] { w.shape[0], Q8.Blocks(w.shape[1]) }, dtype: ScalarType.Float16);
        Q8.QuantizeInto(w, q, s, isa);
        return (q, s);
    }

    static void AssertSame((Tensor Q, Tensor S) want, (Tensor Q, Tensor S) got, string what)
    {
        Assert.True(want.Q.bytes.SequenceEqual(got.Q.bytes), $"{what}: q differs");
        Assert.True(want.S.bytes.SequenceEqual(got.S.bytes), $"{what}: scales differ");
    }

    /// <summary>Weights with every kind of block: random, all zero, ±max of the dtype, subnormal, exact halves after scaling.</summary>
    static Tensor Weights(long n, long k, ScalarType dtype, Generator g)
    {
        var w = randn(new[] { n, k }, generator: g) * 0.05;
        float max = dtype switch { ScalarType.BFloat16 => 3.3895314e38f, ScalarType.Float16 => 65504f, _ => float.MaxValue };
        float sub = dtype switch { ScalarType.BFloat16 => 9.2e-41f, ScalarType.Float16 => 5.96e-8f, _ => 1.4e-45f };
        var a = w.data<float>().ToArray();
        for (long r = 0; r < n; r++)
        {
            long row = r * k;
            switch (r % 5)
            {
                case 1: for (long c = 0; c < Math.Min(k, 32); c++) a[row + c] = 0; break;                  // a zero block
                case 2: a[row] = max; if (k > 1) a[row + 1] = -max; break;                                  // ±max
                case 3: for (long c = 0; c < Math.Min(k, 32); c++) a[row + c] = sub * (c % 3 - 1) * (c + 1); break; // subnormals
                case 4:                                                                                      // d = 1: halves
                    a[row] = 127;
                    for (long c = 1; c < Math.Min(k, 32); c++) a[row + c] = (c % 2 == 0 ? -1 : 1) * (c * 4 % 127 + 0.5f);
                    break;
            }
        }
        return tensor(a, new[] { n, k }).to_type(dtype);
    }

    [Fact]
    public void EveryInstructionSetGivesTheScalarRuleBitForBit()
    {
        using var noGrad = no_grad();
        var g = new Generator(21, CPU);
        foreach (var dtype in Sources)
            foreach (var (n, k) in Shapes)
            {
                var w = Weights(n, k, dtype, g);
                var want = Run(w, null);
                // The scalar rule itself, against the class summary written out on the f32 values.
                var (rq, rs) = KernelTests.ReferenceQuantize(w.to_type(ScalarType.Float32).data<float>().ToArray(), (int)n, (int)k);
                Assert.Equal(rq, want.Q.data<sbyte>().ToArray());
                Assert.Equal(rs, want.S.data<Half>().Select(BitConverter.HalfToUInt16Bits).ToArray());
                foreach (var isa in Isas()) AssertSame(want, Run(w, isa), $"{dtype} [{n}, {k}] {isa}");
                AssertSame(want, Q8.Quantize(w), $"{dtype} [{n}, {k}] default");
            }
    }

    [Fact]
    public void NonFiniteAndTinyBlocksFollowTheScalarRule()
    {
        // Infinities and NaN, and a block whose scale is so small that 1/d overflows: the vector kernels hand these
        // blocks to the scalar rule, so every instruction set agrees with it.
        var rows = new[]
        {
            new float[] { float.PositiveInfinity, 1, -2, 0 },
            new float[] { float.NegativeInfinity, float.PositiveInfinity, 3, 0 },
            new float[] { float.NaN, 1, 2, 3 },
            new float[] { 1e-44f, -3e-45f, 0, 1.4e-45f },
        };
        foreach (var row in rows)
        {
            var full = new float[64];
            for (int i = 0; i < full.Length; i++) full[i] = row[i % row.Length];
            using var w = tensor(full, new long[] { 1, 64 });
            var want = Run(w, null);
            foreach (var isa in Isas()) AssertSame(want, Run(w, isa), $"[{string.Join(", ", row)}] {isa}");
        }
    }

    [Fact]
    public void StridedAndTransposedSourcesQuantizeLikeContiguousOnes()
    {
        using var noGrad = no_grad();
        var g = new Generator(22, CPU);
        foreach (var dtype in Sources)
        {
            var big = Weights(20, 150, dtype, g);
            using var cols = big.narrow(1, 7, 100);                 // rows contiguous, row stride 150: read in place
            AssertSame(Run(cols.contiguous(), null), Q8.Quantize(cols), $"{dtype} column range");
            using var t = big.t();                                  // stride 1 across rows: converted in slices
            AssertSame(Run(t.contiguous(), null), Q8.Quantize(t), $"{dtype} transposed");
            // Row ranges of a larger destination.
            var q = empty(new long[] { 40, 150 }, dtype: ScalarType.Int8);
            var s = empty(new long[] { 40, Q8.Blocks(150) }, dtype: ScalarType.Float16);
            Q8.QuantizeInto(big, q.narrow(0, 10, 20), s.narrow(0, 10, 20));
            AssertSame(Q8.Quantize(big), (q.narrow(0, 10, 20).contiguous(), s.narrow(0, 10, 20).contiguous()), $"{dtype} row range");
        }
    }

    [Fact]
    public void QuantizingAtLoadInManySlicesEqualsQuantizingEachTensor()
    {
        // Loading reads a float tensor in slices of rows into one reused buffer; with slices of a few rows every tensor
        // spans several of them (and buffers of both the f32 and the bf16 tensors of a mixed checkpoint are used).
        var config = TestModels.Small(vocab: 320) with { HiddenSize = 72, IntermediateSize = 100 };
        string dir = TestModels.TempDir();
        using (var m = LlamaForCausalLM.Create(config).InitializeWeights(5, 0.1)) m.Save(dir, dtype: ScalarType.BFloat16);
        long saved = StateLoader.QuantizeSliceBytes;
        try
        {
            StateLoader.QuantizeSliceBytes = 3 * 72 * 2 + 5;
            using var q = LlamaForCausalLM.FromPretrained(dir, new LoadOptions { Quantize = WeightQuantization.Q8 });
            using var f = LlamaForCausalLM.FromPretrained(dir, new LoadOptions { DType = ScalarType.BFloat16 });
            var fp = f.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            var scales = QuantizedLayers.Scales(q);
            int quantized = 0;
            foreach (var (name, p) in q.named_parameters())
            {
                if (p.dtype != ScalarType.Int8) continue;
                quantized++;
                AssertSame(Q8.Quantize(fp[name]), (p, scales[name]), name);
            }
            Assert.Equal(2 * 7 + 2, quantized);
        }
        finally { StateLoader.QuantizeSliceBytes = saved; }
    }

    [Fact]
    public void ReadRowsIntoFillsABufferAndRefusesAMismatch()
    {
        string dir = TestModels.TempDir();
        var w = arange(0, 60, dtype: ScalarType.Float32).view(10, 6).to_type(ScalarType.BFloat16);
        SafeTensorsWriter.Write(Path.Combine(dir, "model.safetensors"), new[] { new TensorToWrite("w", w.shape, ScalarType.BFloat16, () => w, false) });
        using var reader = CheckpointReader.Open(dir);
        var buffer = empty(new long[] { 3, 6 }, dtype: ScalarType.BFloat16);
        reader.ReadRowsInto("w", 4, buffer);
        Assert.True(buffer.equal(w.narrow(0, 4, 3)).all().item<bool>());
        reader.ReadRowsInto("w", 7, buffer);
        Assert.True(buffer.equal(w.narrow(0, 7, 3)).all().item<bool>());
        Assert.Throws<CheckpointFormatException>(() => reader.ReadRowsInto("w", 8, buffer));                       // past the end
        Assert.Throws<CheckpointFormatException>(() => reader.ReadRowsInto("w", 0, empty(new long[] { 2, 5 }, dtype: ScalarType.BFloat16)));
        Assert.Throws<ArgumentException>(() => reader.ReadRowsInto("w", 0, empty(new long[] { 2, 6 }, dtype: ScalarType.Float32)));
    }

}

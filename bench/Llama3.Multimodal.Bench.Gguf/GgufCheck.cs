// Re-reads a GGUF written by LlamaGguf.Export and compares it with its source folder: header, metadata, vocabulary,
// tensor table, and every tensor's values (F32 exact, F16 equal to the source rounded to half, Q8_0 with the scale
// f16(max|x| / 127) and each weight within the Q8_0 error bound).
using System.Text;
using Llama3.Multimodal.Text;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Bench.Gguf;

/// <summary>Verification of an exported GGUF against the folder it came from.</summary>
public static class GgufCheck
{
    /// <summary>What the check saw.</summary>
    public sealed record Report(int Tensors, int Keys, int Tokens, int Merges, long Elements, double MaxQ8Error, double MaxQ8ErrorOverScale);

    /// <summary>Throws <see cref="InvalidDataException"/> naming the first difference.</summary>
    public static Report Verify(string modelDir, string ggufPath, GgmlType type)
    {
        var cfg = LlamaConfigJson.ReadHuggingFace(Path.Combine(modelDir, "config.json"));
        var tok = Llama3Tokenizer.FromModelDirectory(modelDir) ?? Llama3Tokenizer.Default;
        using var g = GgufReader.Open(ggufPath);
        using var ckpt = CheckpointReader.Open(modelDir);
        void Fail(string what) => throw new InvalidDataException($"{ggufPath}: {what}");
        void Eq(string key, object expect)
        {
            if (!g.Metadata.TryGetValue(key, out var v)) Fail($"missing key '{key}'.");
            else if (!v.Equals(expect)) Fail($"key '{key}' is {v} ({v.GetType().Name}), expected {expect} ({expect.GetType().Name}).");
        }
        if (g.Version != 3) Fail($"version {g.Version}");
        Eq("general.architecture", "llama");
        Eq("general.alignment", (uint)GgufWriter.Alignment);
        Eq("general.file_type", LlamaGguf.FileType(type));
        Eq("llama.vocab_size", (uint)cfg.EmbeddingRows);
        Eq("llama.context_length", (uint)cfg.MaxPositionEmbeddings);
        Eq("llama.embedding_length", (uint)cfg.HiddenSize);
        Eq("llama.block_count", (uint)cfg.NumLayers);
        Eq("llama.feed_forward_length", (uint)cfg.IntermediateSize);
        Eq("llama.attention.head_count", (uint)cfg.NumHeads);
        Eq("llama.attention.head_count_kv", (uint)cfg.NumKvHeads);
        Eq("llama.rope.dimension_count", (uint)cfg.HeadDim);
        Eq("llama.rope.freq_base", (float)cfg.RopeTheta);
        Eq("llama.attention.layer_norm_rms_epsilon", (float)cfg.RmsNormEps);
        Eq("tokenizer.ggml.model", "gpt2");
        Eq("tokenizer.ggml.pre", "llama-bpe");
        Eq("tokenizer.ggml.bos_token_id", (uint)cfg.BosTokenId);
        Eq("tokenizer.ggml.eos_token_id", (uint)cfg.EosTokenIds[0]);
        Eq("tokenizer.ggml.add_bos_token", true);

        var tokens = (object[])g.Metadata["tokenizer.ggml.tokens"];
        var types = (object[])g.Metadata["tokenizer.ggml.token_type"];
        var merges = (object[])g.Metadata["tokenizer.ggml.merges"];
        if (tokens.Length != cfg.EmbeddingRows || types.Length != tokens.Length) Fail($"{tokens.Length} tokens / {types.Length} types for {cfg.EmbeddingRows} embedding rows.");
        var b2u = LlamaGguf.ByteToUnicode();
        var u2b = new Dictionary<char, byte>();
        for (int b = 0; b < 256; b++) u2b[b2u[b]] = (byte)b;
        for (int id = 0; id < tok.VocabSize; id++)
        {
            string s = (string)tokens[id];
            byte[] bytes = tok.IsSpecial(id) ? Encoding.UTF8.GetBytes(s) : s.Select(c => u2b[c]).ToArray();
            if (!bytes.AsSpan().SequenceEqual(tok.TokenBytes(id))) Fail($"token {id} '{s}' does not decode to the tokenizer's bytes.");
            if ((int)types[id] != (tok.IsSpecial(id) ? 3 : 1)) Fail($"token {id} has type {types[id]}.");
        }
        // Every merge joins two tokens into a token, in non-decreasing order of the rank of the token it makes.
        var idOf = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int id = 0; id < tok.BaseVocabSize; id++) idOf.TryAdd((string)tokens[id], id);
        int lastRank = -1;
        foreach (string m in merges.Cast<string>())
        {
            int sp = m.IndexOf(' ');
            if (sp <= 0 || !idOf.ContainsKey(m[..sp]) || !idOf.ContainsKey(m[(sp + 1)..]) || !idOf.TryGetValue(m[..sp] + m[(sp + 1)..], out int r))
                Fail($"merge '{m}' does not join two tokens into a token.");
            else if (r < lastRank) Fail($"merge '{m}' (token {r}) comes after a merge making token {lastRank}.");
            else lastRank = r;
        }
        if (merges.Length < tok.BaseVocabSize - 256) Fail($"only {merges.Length} merges for {tok.BaseVocabSize} base tokens.");

        var expected = new List<(string Gguf, string? Hf, long[] Dims, GgmlType Type)>();
        var names = LlamaGguf.TensorNames(cfg);
        expected.Add((names[0].Gguf, names[0].Hf, Dims(ckpt.Info(names[0].Hf).Shape), type));
        if (cfg.RopeScaling is not null) expected.Add(("rope_freqs.weight", null, new long[] { cfg.HeadDim / 2 }, GgmlType.F32));
        foreach (var (hf, gg) in names.Skip(1))
        {
            var shape = ckpt.Info(hf).Shape;
            expected.Add((gg, hf, Dims(shape), LlamaGguf.TypeFor(shape, type)));
        }
        if (g.Tensors.Count != expected.Count) Fail($"{g.Tensors.Count} tensors, expected {expected.Count}.");
        long elements = 0;
        double maxErr = 0, maxErrOverScale = 0;
        for (int i = 0; i < expected.Count; i++)
        {
            var e = expected[i];
            var t = g.Tensors[i];
            if (t.Name != e.Gguf || !t.Dims.SequenceEqual(e.Dims) || t.Type != e.Type)
                Fail($"tensor {i} is {t.Name} [{string.Join(", ", t.Dims)}] {t.Type}, expected {e.Gguf} [{string.Join(", ", e.Dims)}] {e.Type}.");
            float[] got = g.ReadFloats(t);
            float[] src;
            if (e.Hf is null) src = LlamaGguf.RopeFactors(cfg);
            else
            {
                using var scope = NewDisposeScope();
                var s = ckpt.Read(e.Hf).to(ScalarType.Float32);
                if (e.Hf.EndsWith("q_proj.weight", StringComparison.Ordinal)) s = LlamaGguf.ToInterleavedRope(s, cfg.NumHeads);
                else if (e.Hf.EndsWith("k_proj.weight", StringComparison.Ordinal)) s = LlamaGguf.ToInterleavedRope(s, cfg.NumKvHeads);
                src = s.contiguous().data<float>().ToArray();
            }
            elements += got.Length;
            switch (t.Type)
            {
                case GgmlType.F32:
                    for (int k = 0; k < src.Length; k++)
                        if (BitConverter.SingleToInt32Bits(got[k]) != BitConverter.SingleToInt32Bits(src[k])) Fail($"{t.Name}[{k}] = {got[k]}, source {src[k]}.");
                    break;
                case GgmlType.F16:
                    for (int k = 0; k < src.Length; k++)
                        if (got[k] != (float)(Half)src[k]) Fail($"{t.Name}[{k}] = {got[k]}, source {src[k]} rounds to {(float)(Half)src[k]}.");
                    break;
                case GgmlType.BF16:
                    for (int k = 0; k < src.Length; k++)
                        if (Math.Abs(got[k] - src[k]) > Math.Abs(src[k]) / 256) Fail($"{t.Name}[{k}] = {got[k]}, source {src[k]}.");
                    break;
                case GgmlType.Q8_0:
                    var raw = g.ReadBytes(t);
                    for (int b = 0; b < src.Length / Q8Block.Size; b++)
                    {
                        float amax = 0;
                        for (int j = 0; j < Q8Block.Size; j++) amax = Math.Max(amax, Math.Abs(src[b * Q8Block.Size + j]));
                        float d = amax / 127f;
                        var h = BitConverter.UInt16BitsToHalf((ushort)(raw[b * Q8Block.Bytes] | raw[b * Q8Block.Bytes + 1] << 8));
                        if (h != (Half)d) Fail($"{t.Name} block {b}: scale {h}, expected f16({d}) = {(Half)d}.");
                        // |x − h·q| ≤ d/2 (rounding to the integer grid) + 127·|d − h| (the scale stored as float16).
                        double bound = d / 2.0 + 127 * Math.Abs(d - (double)(float)h) + 1e-7 * amax;
                        for (int j = 0; j < Q8Block.Size; j++)
                        {
                            int k = b * Q8Block.Size + j;
                            double err = Math.Abs(got[k] - src[k]);
                            if (err > bound) Fail($"{t.Name}[{k}] = {got[k]}, source {src[k]}: error {err:G3} exceeds the Q8_0 bound {bound:G3}.");
                            maxErr = Math.Max(maxErr, err);
                            if (d > 0) maxErrOverScale = Math.Max(maxErrOverScale, err / d);
                        }
                    }
                    break;
            }
        }
        return new Report(g.Tensors.Count, g.Keys.Count, tokens.Length, merges.Length, elements, maxErr, maxErrOverScale);
    }

    static long[] Dims(long[] torchShape) => torchShape.Reverse().ToArray();
}

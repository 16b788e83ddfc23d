// Writes a Hugging Face layout Llama 3 text checkpoint (config.json + safetensors + tokenizer) as a GGUF file that
// llama.cpp loads as architecture "llama", so both runtimes can be measured on the same weights.
using System.Runtime.InteropServices;
using System.Text;
using Llama3.Multimodal.Text;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Bench.Gguf;

/// <summary>HF Llama 3 folder → GGUF (F32, F16 or Q8_0 for the 2-D weights; norms and RoPE factors stay F32).</summary>
public static class LlamaGguf
{
    /// <summary>general.file_type for each supported weight type.</summary>
    public static uint FileType(GgmlType t) => t switch
    {
        GgmlType.F32 => 0,
        GgmlType.F16 => 1,
        GgmlType.Q8_0 => 7,
        GgmlType.BF16 => 32,
        _ => throw new ArgumentException($"unsupported weight type {t}"),
    };

    /// <summary>Parses f32 / f16 / bf16 / q8_0.</summary>
    public static GgmlType ParseType(string s) => s.ToLowerInvariant() switch
    {
        "f32" => GgmlType.F32,
        "f16" => GgmlType.F16,
        "bf16" => GgmlType.BF16,
        "q8_0" or "q8" => GgmlType.Q8_0,
        _ => throw new ArgumentException($"unknown GGUF weight type '{s}' (f32, f16, bf16, q8_0)."),
    };

    /// <summary>The (HF key, GGUF name) pairs of a checkpoint, in the order written.</summary>
    public static List<(string Hf, string Gguf)> TensorNames(LlamaConfig cfg)
    {
        var l = new List<(string, string)> { ("model.embed_tokens.weight", "token_embd.weight") };
        for (int i = 0; i < cfg.NumLayers; i++)
        {
            string p = $"model.layers.{i}.", b = $"blk.{i}.";
            l.Add((p + "input_layernorm.weight", b + "attn_norm.weight"));
            l.Add((p + "self_attn.q_proj.weight", b + "attn_q.weight"));
            l.Add((p + "self_attn.k_proj.weight", b + "attn_k.weight"));
            l.Add((p + "self_attn.v_proj.weight", b + "attn_v.weight"));
            l.Add((p + "self_attn.o_proj.weight", b + "attn_output.weight"));
            l.Add((p + "post_attention_layernorm.weight", b + "ffn_norm.weight"));
            l.Add((p + "mlp.gate_proj.weight", b + "ffn_gate.weight"));
            l.Add((p + "mlp.up_proj.weight", b + "ffn_up.weight"));
            l.Add((p + "mlp.down_proj.weight", b + "ffn_down.weight"));
        }
        l.Add(("model.norm.weight", "output_norm.weight"));
        if (!cfg.TieWordEmbeddings) l.Add(("lm_head.weight", "output.weight"));
        return l;
    }

    /// <summary>
    /// Rows of a q_proj / k_proj weight reordered from the HF rotate-half layout (first half of each head's rows are the
    /// real parts, second half the imaginary parts) to the interleaved pair layout llama.cpp's "llama" RoPE expects:
    /// view the rows as [heads, 2, head_dim/2], swap the last two axes.
    /// </summary>
    public static Tensor ToInterleavedRope(Tensor w, int heads)
    {
        long rows = w.shape[0];
        if (rows % (2 * heads) != 0) throw new ArgumentException($"{rows} rows do not split into {heads} heads of pairs.");
        var rest = w.shape.Skip(1).ToArray();
        var shape = new long[] { heads, 2, rows / heads / 2 }.Concat(rest).ToArray();
        return w.reshape(shape).transpose(1, 2).reshape(w.shape).contiguous();
    }

    /// <summary>
    /// Llama 3 RoPE scaling as per-frequency divisors (GGUF tensor rope_freqs.weight, head_dim / 2 floats): 1 for
    /// wavelengths shorter than original_context / high_freq_factor, factor for those longer than
    /// original_context / low_freq_factor, and a smooth blend between.
    /// </summary>
    public static float[] RopeFactors(LlamaConfig cfg)
    {
        var s = cfg.RopeScaling ?? throw new ArgumentException("no rope scaling");
        int half = cfg.HeadDim / 2;
        var f = new float[half];
        double lowWave = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor, highWave = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
        for (int i = 0; i < half; i++)
        {
            float freq = (float)(1.0 / Math.Pow(cfg.RopeTheta, (2.0 * i) / cfg.HeadDim));
            double wave = 2 * Math.PI / freq;
            if (wave < highWave) f[i] = 1;
            else if (wave > lowWave) f[i] = (float)s.Factor;
            else
            {
                double smooth = (s.OriginalMaxPositionEmbeddings / wave - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                f[i] = (float)(1 / ((1 - smooth) / s.Factor + smooth));
            }
        }
        return f;
    }

    /// <summary>GPT-2 byte-level alphabet: byte → the character that stands for it in token strings and merges.</summary>
    public static char[] ByteToUnicode()
    {
        var map = new char[256];
        var used = new bool[256];
        for (int b = '!'; b <= '~'; b++) used[b] = true;
        for (int b = 0xA1; b <= 0xAC; b++) used[b] = true;
        for (int b = 0xAE; b <= 0xFF; b++) used[b] = true;
        int n = 0;
        for (int b = 0; b < 256; b++) map[b] = used[b] ? (char)b : (char)(256 + n++);
        return map;
    }

    /// <summary>
    /// The vocabulary as GGUF "gpt2" tokens: token strings in the byte-level alphabet, types (1 normal, 3 control,
    /// 5 unused padding rows), and the merges. Every split of a token into two tokens is a merge, ordered by the rank
    /// of the token it makes (then by the ranks of its two pieces), so always applying the lowest-ranked merge picks
    /// the same pair as tiktoken's rule (merge the adjacent pair that forms the lowest-ranked token).
    /// </summary>
    public static (List<string> Tokens, List<int> Types, List<string> Merges) Vocabulary(Llama3Tokenizer tok, int rows)
    {
        if (tok.VocabSize > rows) throw new ArgumentException($"the tokenizer has {tok.VocabSize} ids but the embedding only {rows} rows.");
        var b2u = ByteToUnicode();
        string Text(byte[] b) { var sb = new StringBuilder(b.Length); foreach (byte x in b) sb.Append(b2u[x]); return sb.ToString(); }
        var tokens = new List<string>(rows);
        var types = new List<int>(rows);
        var rank = new Dictionary<string, int>(tok.BaseVocabSize, StringComparer.Ordinal);
        for (int id = 0; id < tok.BaseVocabSize; id++)
        {
            string t = Text(tok.TokenBytes(id));
            tokens.Add(t);
            types.Add(1);
            rank.TryAdd(t, id);
        }
        var names = Llama3Tokenizer.SpecialNames();
        foreach (var n in names) { tokens.Add(n); types.Add(3); }
        for (int id = tok.VocabSize; id < rows; id++) { tokens.Add($"[PAD{id}]"); types.Add(5); }

        var merges = new List<string>();
        var local = new List<(int Left, int Right, string Merge)>();
        for (int r = 0; r < tok.BaseVocabSize; r++)
        {
            string t = tokens[r];
            if (rank[t] != r) continue; // a duplicate byte string keeps its first id
            local.Clear();
            for (int i = 1; i < t.Length; i++)
                if (rank.TryGetValue(t[..i], out int left) && rank.TryGetValue(t[i..], out int right))
                    local.Add((left, right, t[..i] + " " + t[i..]));
            local.Sort((a, b) => a.Left != b.Left ? a.Left.CompareTo(b.Left) : a.Right.CompareTo(b.Right));
            foreach (var m in local) merges.Add(m.Merge);
        }
        return (tokens, types, merges);
    }

    /// <summary>Writes <paramref name="modelDir"/> as GGUF at <paramref name="outPath"/> with 2-D weights in <paramref name="type"/>.</summary>
    public static void Export(string modelDir, string outPath, GgmlType type, TextWriter? log = null)
    {
        string cfgPath = Path.Combine(modelDir, "config.json");
        var cfg = LlamaConfigJson.ReadHuggingFace(cfgPath);
        var tok = Llama3Tokenizer.FromModelDirectory(modelDir) ?? Llama3Tokenizer.Default;
        using var ckpt = CheckpointReader.Open(modelDir);
        var names = TensorNames(cfg);
        foreach (var (hf, _) in names)
            if (!ckpt.Contains(hf)) throw new ArgumentException($"{modelDir}: checkpoint has no tensor '{hf}'.");

        var w = new GgufWriter();
        w.Add("general.architecture", "llama");
        w.Add("general.name", Path.GetFileName(Path.GetFullPath(modelDir).TrimEnd('/')));
        w.AddUInt32("general.alignment", GgufWriter.Alignment);
        w.AddUInt32("general.file_type", FileType(type));
        if (type == GgmlType.Q8_0) w.AddUInt32("general.quantization_version", 2);
        w.AddUInt32("llama.vocab_size", (uint)cfg.EmbeddingRows);
        w.AddUInt32("llama.context_length", (uint)cfg.MaxPositionEmbeddings);
        w.AddUInt32("llama.embedding_length", (uint)cfg.HiddenSize);
        w.AddUInt32("llama.block_count", (uint)cfg.NumLayers);
        w.AddUInt32("llama.feed_forward_length", (uint)cfg.IntermediateSize);
        w.AddUInt32("llama.attention.head_count", (uint)cfg.NumHeads);
        w.AddUInt32("llama.attention.head_count_kv", (uint)cfg.NumKvHeads);
        w.AddUInt32("llama.attention.key_length", (uint)cfg.HeadDim);
        w.AddUInt32("llama.attention.value_length", (uint)cfg.HeadDim);
        w.AddUInt32("llama.rope.dimension_count", (uint)cfg.HeadDim);
        w.AddFloat32("llama.rope.freq_base", (float)cfg.RopeTheta);
        w.AddFloat32("llama.attention.layer_norm_rms_epsilon", (float)cfg.RmsNormEps);
        var (tokens, types, merges) = Vocabulary(tok, cfg.EmbeddingRows);
        w.Add("tokenizer.ggml.model", "gpt2");
        w.Add("tokenizer.ggml.pre", "llama-bpe");
        w.Add("tokenizer.ggml.tokens", tokens);
        w.Add("tokenizer.ggml.token_type", types);
        w.Add("tokenizer.ggml.merges", merges);
        w.AddUInt32("tokenizer.ggml.bos_token_id", (uint)cfg.BosTokenId);
        w.AddUInt32("tokenizer.ggml.eos_token_id", (uint)cfg.EosTokenIds[0]);
        w.AddBool("tokenizer.ggml.add_bos_token", true);
        w.AddBool("tokenizer.ggml.add_eos_token", false);

        var order = new List<(string Gguf, string? Hf)>();
        var first = names[0];
        w.AddTensor(first.Gguf, ckpt.Info(first.Hf).Shape, TypeFor(ckpt.Info(first.Hf).Shape, type));
        order.Add((first.Gguf, first.Hf));
        float[]? ropeFactors = null;
        if (cfg.RopeScaling is not null)
        {
            ropeFactors = RopeFactors(cfg);
            w.AddTensor("rope_freqs.weight", new long[] { ropeFactors.Length }, GgmlType.F32);
            order.Add(("rope_freqs.weight", null));
        }
        foreach (var (hf, gg) in names.Skip(1))
        {
            var shape = ckpt.Info(hf).Shape;
            w.AddTensor(gg, shape, TypeFor(shape, type));
            order.Add((gg, hf));
        }
        var hfOf = order.ToDictionary(o => o.Gguf, o => o.Hf);

        w.Write(outPath, (gg, stream) =>
        {
            string? hf = hfOf[gg];
            if (hf is null) { stream.Write(MemoryMarshal.AsBytes(ropeFactors.AsSpan())); return; }
            using var scope = NewDisposeScope();
            var t = ckpt.Read(hf).to(ScalarType.Float32);
            if (hf.EndsWith("q_proj.weight", StringComparison.Ordinal)) t = ToInterleavedRope(t, cfg.NumHeads);
            else if (hf.EndsWith("k_proj.weight", StringComparison.Ordinal)) t = ToInterleavedRope(t, cfg.NumKvHeads);
            t = t.contiguous();
            WriteAs(t, TypeFor(t.shape, type), stream);
            log?.WriteLine($"  {gg} [{string.Join(", ", t.shape)}] {TypeFor(t.shape, type)}");
        });
    }

    /// <summary>1-D tensors (norms) stay F32; 2-D weights get the file's type.</summary>
    public static GgmlType TypeFor(long[] torchShape, GgmlType type) => torchShape.Length == 1 ? GgmlType.F32 : type;

    static void WriteAs(Tensor t, GgmlType type, Stream s)
    {
        switch (type)
        {
            case GgmlType.F32: WriteBytes(t, s); break;
            case GgmlType.F16: using (var h = t.to(ScalarType.Float16)) WriteBytes(h, s); break;
            case GgmlType.BF16: using (var h = t.to(ScalarType.BFloat16)) WriteBytes(h, s); break;
            case GgmlType.Q8_0:
            {
                var src = MemoryMarshal.Cast<byte, float>(t.bytes);
                const int RowsPerChunk = 1 << 20; // floats per chunk (a multiple of the block)
                var buf = new byte[RowsPerChunk / Q8Block.Size * Q8Block.Bytes];
                for (int start = 0; start < src.Length; start += RowsPerChunk)
                {
                    int n = Math.Min(RowsPerChunk, src.Length - start);
                    int outBytes = n / Q8Block.Size * Q8Block.Bytes;
                    Q8Block.Quantize(src.Slice(start, n), buf.AsSpan(0, outBytes));
                    s.Write(buf, 0, outBytes);
                }
                break;
            }
            default: throw new ArgumentException($"unsupported type {type}");
        }
    }

    static void WriteBytes(Tensor t, Stream s)
    {
        var b = t.bytes;
        const int Chunk = 1 << 30;
        for (long o = 0; o < b.Length; o += Chunk) s.Write(b.Slice((int)o, (int)Math.Min(Chunk, b.Length - o)));
    }
}

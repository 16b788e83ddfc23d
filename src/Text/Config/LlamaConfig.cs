namespace Llama3.Multimodal.Text;

/// <summary>
/// Shape and numerics of a Llama 3 text decoder. Field meanings follow Hugging Face <c>LlamaConfig</c>; see
/// <see cref="LlamaConfigJson"/> for reading <c>config.json</c> (HF) and <c>params.json</c> (Meta).
/// </summary>
public sealed record LlamaConfig
{
    /// <summary>Model width (HF <c>hidden_size</c>, Meta <c>dim</c>).</summary>
    public required int HiddenSize { get; init; }
    /// <summary>Number of decoder layers (self-attention layers only for text models).</summary>
    public required int NumLayers { get; init; }
    /// <summary>Query heads.</summary>
    public required int NumHeads { get; init; }
    /// <summary>Key/value heads (grouped-query attention); 8 for every published size.</summary>
    public required int NumKvHeads { get; init; }
    /// <summary>SwiGLU hidden size (HF <c>intermediate_size</c>).</summary>
    public required int IntermediateSize { get; init; }
    /// <summary>Output vocabulary (rows of <c>lm_head</c>).</summary>
    public required int VocabSize { get; init; }
    /// <summary>Extra embedding rows beyond <see cref="VocabSize"/> (8 in Llama 3.2 Vision for <c>&lt;|image|&gt;</c> and padding).</summary>
    public int ExtraEmbeddingRows { get; init; }
    /// <summary>RMSNorm epsilon (1e-5).</summary>
    public double RmsNormEps { get; init; } = 1e-5;
    /// <summary>Rotary base (500 000 for Llama 3).</summary>
    public double RopeTheta { get; init; } = 500_000;
    /// <summary>Llama 3.1 rotary scaling, or null for none (Llama 3.0).</summary>
    public RopeScaling? RopeScaling { get; init; }
    /// <summary>Longest supported context in tokens.</summary>
    public int MaxPositionEmbeddings { get; init; } = 8192;
    /// <summary>Output projection shares the embedding matrix (Llama 3.2 1B/3B).</summary>
    public bool TieWordEmbeddings { get; init; }
    /// <summary><c>&lt;|begin_of_text|&gt;</c> id.</summary>
    public int BosTokenId { get; init; } = 128000;
    /// <summary>Stop token ids.</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = new[] { 128001, 128008, 128009 };
    /// <summary>Padding token id used by batched generation (defaults to <c>&lt;|finetune_right_pad_id|&gt;</c>).</summary>
    public int PadTokenId { get; init; } = 128004;

    /// <summary>Per-head width: <c>HiddenSize / NumHeads</c>.</summary>
    public int HeadDim => HiddenSize / NumHeads;

    /// <summary>Rows of the input embedding.</summary>
    public int EmbeddingRows => VocabSize + ExtraEmbeddingRows;

    /// <summary>Meta's SwiGLU hidden-size rule (params.json): <c>h = 4·dim; h = int(2h/3); h = int(mult·h); round up to multiple_of</c>.</summary>
    public static int FfnHiddenSize(int dim, double? ffnDimMultiplier, int multipleOf)
    {
        int h = 4 * dim;
        h = (int)(2 * h / 3.0);
        if (ffnDimMultiplier is double m) h = (int)(m * h);
        return multipleOf * ((h + multipleOf - 1) / multipleOf);
    }

    /// <summary>Checks the values are consistent; throws <see cref="ConfigException"/> naming the bad field.</summary>
    public LlamaConfig Validate(string source = "config")
    {
        void Positive(string name, long v, long max)
        {
            if (v <= 0 || v > max) throw new ConfigException($"{source}: {name} = {v} is out of range (1..{max}).");
        }
        Positive("hidden_size", HiddenSize, 1 << 17);
        Positive("num_hidden_layers", NumLayers, 4096);
        Positive("num_attention_heads", NumHeads, 4096);
        Positive("num_key_value_heads", NumKvHeads, 4096);
        Positive("intermediate_size", IntermediateSize, 1 << 20);
        Positive("vocab_size", VocabSize, 1 << 24);
        Positive("max_position_embeddings", MaxPositionEmbeddings, 1 << 24);
        if (ExtraEmbeddingRows < 0 || ExtraEmbeddingRows > 1 << 16) throw new ConfigException($"{source}: extra embedding rows {ExtraEmbeddingRows} out of range.");
        if (HiddenSize % NumHeads != 0) throw new ConfigException($"{source}: hidden_size {HiddenSize} is not divisible by num_attention_heads {NumHeads}.");
        if (NumHeads % NumKvHeads != 0) throw new ConfigException($"{source}: num_attention_heads {NumHeads} is not divisible by num_key_value_heads {NumKvHeads}.");
        if (HeadDim % 2 != 0) throw new ConfigException($"{source}: head_dim {HeadDim} must be even for rotary embeddings.");
        if (!double.IsFinite(RmsNormEps) || RmsNormEps <= 0 || RmsNormEps > 1) throw new ConfigException($"{source}: rms_norm_eps {RmsNormEps} must be a finite value in (0, 1].");
        if (!double.IsFinite(RopeTheta) || RopeTheta <= 1) throw new ConfigException($"{source}: rope_theta {RopeTheta} must be finite and > 1.");
        if (RopeScaling is { } s)
        {
            if (!double.IsFinite(s.Factor) || s.Factor <= 0) throw new ConfigException($"{source}: rope_scaling.factor {s.Factor} must be finite and > 0.");
            if (!double.IsFinite(s.LowFreqFactor) || !double.IsFinite(s.HighFreqFactor) || s.LowFreqFactor <= 0 || s.HighFreqFactor <= s.LowFreqFactor)
                throw new ConfigException($"{source}: rope_scaling needs 0 < low_freq_factor < high_freq_factor (got {s.LowFreqFactor}, {s.HighFreqFactor}).");
            if (s.OriginalMaxPositionEmbeddings <= 0) throw new ConfigException($"{source}: rope_scaling.original_max_position_embeddings {s.OriginalMaxPositionEmbeddings} must be > 0.");
        }
        return this;
    }

    /// <summary>Number of parameters this config implies (embedding counted once when tied).</summary>
    public long ParameterCount()
    {
        long d = HiddenSize, hd = HeadDim;
        long attn = d * NumHeads * hd + 2 * d * NumKvHeads * hd + NumHeads * hd * d;
        long mlp = 3 * d * IntermediateSize;
        long layer = attn + mlp + 2 * d;
        long emb = (long)EmbeddingRows * d;
        long head = TieWordEmbeddings ? 0 : (long)VocabSize * d;
        return emb + NumLayers * layer + d + head;
    }
}

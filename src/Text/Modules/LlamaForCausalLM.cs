using System.Text.Json;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>
/// A Llama 3 decoder with its output head (HF <c>LlamaForCausalLM</c>). Module names equal the Hugging Face checkpoint
/// keys, so HF files load by name; Meta files load through <see cref="MetaLayout"/>.
/// </summary>
public sealed class LlamaForCausalLM : nn.Module, IComponentModel
{
#pragma warning disable IDE1006
    /// <summary>The decoder stack.</summary>
    public readonly LlamaTextModel model;
    /// <summary>Output projection [vocab, dim]; null when tied to the embedding.</summary>
    public readonly Linear? lm_head;
#pragma warning restore IDE1006

    /// <summary>The configuration.</summary>
    public LlamaConfig Config { get; }
    /// <summary>Device holding the weights.</summary>
    public Device Device { get; }
    /// <summary>Weight dtype.</summary>
    public ScalarType DType { get; }
    /// <summary>Rotary tables.</summary>
    public RotaryEmbedding Rotary { get; }
    /// <summary>How the decoder weights are stored (null: in <see cref="DType"/>).</summary>
    public QuantizationSettings? Quantization { get; }

    // q8 scales of lm_head (null when the head is not quantized or tied).
    readonly Tensor? _headScale;

    /// <summary>Assembles the model from a stack (for multimodal stacks with cross-attention blocks).</summary>
    public LlamaForCausalLM(LlamaConfig config, LlamaTextModel stack, Device device, ScalarType dtype, Device? headDevice = null) : base("LlamaForCausalLM")
    {
        Config = config; Device = device; DType = dtype;
        Quantization = QuantizationSettings.Current;
        model = stack;
        Tensor? headScale = null;
        if (!config.TieWordEmbeddings)
        {
            if (Quantization is { Method: WeightQuantization.Q8, Embeddings: true })
                (lm_head, headScale) = QuantizedLayers.Linear(config.HiddenSize, config.VocabSize, headDevice ?? device);
            else lm_head = Layers.Linear(config.HiddenSize, config.VocabSize, false, headDevice ?? device, dtype);
        }
        Rotary = new RotaryEmbedding(config.HeadDim, config.RopeTheta, config.RopeScaling, config.MaxPositionEmbeddings);
        RegisterComponents();
        _headScale = headScale;     // lm_head's weight_scale buffer (set after registration: not a buffer of this module)
    }

    /// <summary>
    /// Builds a model with uninitialised weights on <paramref name="device"/> (use <c>meta</c> to count parameters
    /// without allocating). Call <see cref="InitializeWeights"/> or load a checkpoint next.
    /// </summary>
    /// <param name="config">Shapes.</param>
    /// <param name="device">Device of the whole model, or of the embedding when <paramref name="devices"/> splits it.</param>
    /// <param name="dtype">Weight dtype.</param>
    /// <param name="extraBlockAt">Returns a block of its own (e.g. cross-attention) for a stack index, or null for a text layer.</param>
    /// <param name="totalBlocks">Stack length when it differs from <see cref="LlamaConfig.NumLayers"/>.</param>
    /// <param name="devices">
    /// Split the stack over several devices (pipeline placement for models larger than one device): contiguous, equal
    /// ranges of blocks per device, the embedding on the first and the final norm and output head on the last; a list
    /// with one entry per block (e.g. from <see cref="DevicePlacement.Proportional"/> or <see cref="DevicePlacement.Auto"/>)
    /// places each block exactly. Activations move between devices; the KV cache of each block lives on its device.
    /// </param>
    public static LlamaForCausalLM Create(LlamaConfig config, Device? device = null, ScalarType dtype = ScalarType.Float32,
        Func<int, DecoderBlock>? extraBlockAt = null, int totalBlocks = -1, IReadOnlyList<Device>? devices = null)
    {
        config.Validate();
        if (devices is { Count: > 0 }) device = devices[0];
        device ??= CPU;
        EnsureFits(config, device, dtype);
        int n = totalBlocks < 0 ? config.NumLayers : totalBlocks;
        Device BlockDevice(int i) => devices is { Count: > 0 } ? devices[(int)((long)i * devices.Count / n)] : device;
        var blocks = new List<DecoderBlock>();
        for (int i = 0; i < n; i++)
        {
            DecoderBlock block = extraBlockAt?.Invoke(i) ?? LlamaDecoderLayer.Create(config, BlockDevice(i), dtype);
            if (devices is { Count: > 0 }) block.PlacedOn = BlockDevice(i);
            blocks.Add(block);
        }
        var last = devices is { Count: > 0 } ? devices[^1] : device;
        bool q8Embedding = QuantizationSettings.Current is { Method: WeightQuantization.Q8, Embeddings: true };
        var stack = new LlamaTextModel(new TokenEmbedding(config.EmbeddingRows, config.HiddenSize, device, dtype, q8Embedding), blocks,
            new RmsNorm(config.HiddenSize, config.RmsNormEps, last, dtype));
        return new LlamaForCausalLM(config, stack, device, dtype, last);
    }

    /// <summary>
    /// Refuses, before allocating anything, a CPU model whose weights cannot fit in this machine's memory (an absurd
    /// config would otherwise end the process when the allocation fails). Under q8 (<see cref="QuantizationSettings.Current"/>)
    /// the quantized weights count at their stored size, 34 bytes per 32 weights.
    /// </summary>
    public static void EnsureFits(LlamaConfig config, Device device, ScalarType dtype)
    {
        if (device.type != DeviceType.CPU) return;
        double need = WeightBytes(config, dtype, QuantizationSettings.Current);
        long have = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (have > 0 && need > have)
        {
            string how = QuantizationSettings.Current is { Method: WeightQuantization.Q8 } ? $"q8, the rest {dtype}" : dtype.ToString();
            throw new ConfigException($"the model needs {need / 1e9:F1} GB for its {config.ParameterCount():N0} weights ({how}) but this machine has {have / 1e9:F1} GB of memory.");
        }
    }

    /// <summary>
    /// Bytes of the text model's weights in memory: every weight in <paramref name="dtype"/>, or under q8 the decoder's
    /// linear layers (and the embedding and head unless <see cref="QuantizationSettings.Embeddings"/> is off) at
    /// <see cref="Q8"/>'s 34 bytes per 32 weights.
    /// </summary>
    public static double WeightBytes(LlamaConfig config, ScalarType dtype, QuantizationSettings? quantization)
    {
        long all = config.ParameterCount();
        double size = SafeTensorDType.Size(dtype);
        if (quantization is not { Method: WeightQuantization.Q8 }) return all * size;
        long d = config.HiddenSize, hd = config.HeadDim;
        long linear = config.NumLayers * (d * config.NumHeads * hd + 2 * d * config.NumKvHeads * hd + config.NumHeads * hd * d + 3 * d * config.IntermediateSize);
        long emb = (long)config.EmbeddingRows * d + (config.TieWordEmbeddings ? 0 : (long)config.VocabSize * d);
        long q8 = linear + (quantization.Embeddings ? emb : 0);
        return q8 * (1 + 2.0 / Q8.BlockSize) + (all - q8) * size;
    }

    /// <summary>Initialises all weights deterministically from <paramref name="seed"/> (N(0, 0.02²), norms 1).</summary>
    public LlamaForCausalLM InitializeWeights(long seed, double std = 0.02)
    {
        WeightInit.Apply(this, seed, std);
        return this;
    }

    /// <summary>Total parameter count (works on the meta device).</summary>
    public long ParameterCount() => parameters().Sum(p => p.numel());

    /// <summary>
    /// The components training chooses from: <c>model</c> (the whole stack), <c>embed_tokens</c>, <c>layers</c>,
    /// <c>norm</c> and, when the head is not tied to the embedding, <c>lm_head</c>.
    /// </summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> Components
    {
        get
        {
            var c = new Dictionary<string, IReadOnlyList<string>>
            {
                ["model"] = new[] { "model" }, ["embed_tokens"] = new[] { "model.embed_tokens" },
                ["layers"] = new[] { "model.layers" }, ["norm"] = new[] { "model.norm" },
            };
            if (lm_head is not null) c["lm_head"] = new[] { "lm_head" };
            return c;
        }
    }

    /// <summary>Embeds token ids [B, T] → [B, T, D].</summary>
    public Tensor Embed(Tensor ids) => model.embed_tokens.forward(ids);

    /// <summary>Forward pass from token ids [B, T] (int64) to f32 logits [B, T, V] (or [B, 1, V] with <see cref="ForwardOptions.LastOnly"/>).</summary>
    public Tensor Forward(Tensor ids, ForwardOptions? options = null)
    {
        using var scope = NewDisposeScope();
        var ids64 = ids.device == Device && ids.dtype == ScalarType.Int64 ? ids : ids.to(ScalarType.Int64, Device);
        var emb = Embed(ids64);
        return ForwardEmbeddings(emb, options).MoveToOuterDisposeScope();
    }

    /// <summary>Forward pass from input embeddings [B, T, D] (used by the speech splice) to f32 logits.</summary>
    public Tensor ForwardEmbeddings(Tensor embeddings, ForwardOptions? options = null)
    {
        using var scope = NewDisposeScope();
        var h = Hidden(embeddings, options);
        return Logits(h).MoveToOuterDisposeScope();
    }

    /// <summary>Runs the stack and returns final-normed hidden states [B, T, D] (or the last position only).</summary>
    public Tensor Hidden(Tensor embeddings, ForwardOptions? options = null)
    {
        options ??= new ForwardOptions();
        using var scope = NewDisposeScope();
        long b = embeddings.shape[0], t = embeddings.shape[1];
        var cache = options.Cache;
        if (SingleRowDecoder.TryForward(this, embeddings, options) is { } step)
        {
            cache!.Advance(1);
            return step.MoveToOuterDisposeScope();
        }
        int offset = cache?.Length ?? 0;
        Tensor positions = options.Positions?.to(Device)
            ?? (options.DocumentIds is not null ? AttentionMask.DocumentPositions(options.DocumentIds).to(Device)
                : Scalars.Arange(offset, offset + t, Device).unsqueeze(0).expand(b, t));
        int maxPos = t == 0 ? 0 : (int)positions.max().item<long>();
        var (cos, sin) = Rotary.Tables(positions, maxPos);
        var mask = AttentionMask.Build(b, t, offset, Config.NumHeads / Config.NumKvHeads, options.KeyValid, options.DocumentIds, Device);
        var ctx = new DecoderContext { Cos = cos, Sin = sin, Mask = mask, Cache = cache, Media = options.Media };
        var x = embeddings.dtype == DType ? embeddings : embeddings.to_type(DType);
        var h = model.Forward(x, ctx);
        cache?.Advance((int)t);
        if (options.LastOnly) h = h.narrow(1, t - 1, 1);
        return h.MoveToOuterDisposeScope();
    }

    /// <summary>Output projection of hidden states, returned as f32 logits.</summary>
    public Tensor Logits(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        Tensor logits;
        if (lm_head is not null)
        {
            var d = lm_head.weight.device;
            logits = WeightKernels.Linear(hidden.device_type == d.type && hidden.device_index == d.index ? hidden : hidden.to(d), lm_head.weight!, _headScale);
        }
        else
        {
            // Tied: the head reads the embedding (on the first device).
            var w = model.embed_tokens.weight;
            logits = WeightKernels.Linear(hidden.device_type == w.device_type && hidden.device_index == w.device_index ? hidden : hidden.to(w.device),
                w.narrow(0, 0, Config.VocabSize), model.embed_tokens.WeightScale?.narrow(0, 0, Config.VocabSize));
        }
        return logits.to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>Allocates a KV cache for this model.</summary>
    public KvCache NewCache(long batch, int capacity) =>
        KvCache.For(Config, model.CacheSlots, batch, Math.Min(capacity, Config.MaxPositionEmbeddings), DType, Device);

    /// <summary>
    /// Loads a checkpoint folder: HF layout (<c>config.json</c> + safetensors) or Meta layout (<c>params.json</c> +
    /// safetensors with Meta key names), converting to <paramref name="dtype"/> on <paramref name="device"/> tensor by tensor.
    /// </summary>
    public static LlamaForCausalLM FromPretrained(string directory, Device? device = null, ScalarType dtype = ScalarType.Float32, Action<int, int>? progress = null,
        IReadOnlyList<Device>? devices = null) =>
        FromPretrained(directory, new LoadOptions { Device = device, DType = dtype, Progress = progress, Devices = devices });

    /// <summary>
    /// Loads a checkpoint folder with <paramref name="options"/>: device, dtype, and q8 quantization of the decoder's
    /// linear layers (applied tensor by tensor while reading; a folder written by <c>mm quantize</c> loads as stored).
    /// </summary>
    public static LlamaForCausalLM FromPretrained(string directory, LoadOptions options)
    {
        var quantization = options.QuantizationFor(directory);
        using var q = QuantizationSettings.Use(quantization);
        return Load(directory, options.Device ?? CPU, options.DType, options.Progress, options.Devices);
    }

    static LlamaForCausalLM Load(string directory, Device device, ScalarType dtype, Action<int, int>? progress, IReadOnlyList<Device>? devices)
    {
        string hf = Path.Combine(directory, "config.json"), meta = Path.Combine(directory, "params.json");
        if (File.Exists(hf))
        {
            var cfg = LlamaConfigJson.ReadHuggingFace(hf);
            var m = Create(cfg, device, dtype, devices: devices);
            using var reader = CheckpointReader.Open(directory);
            StateLoader.Load(m, reader, progress: progress,
                ignoreUnexpected: k => cfg.TieWordEmbeddings && k == "lm_head.weight" || k.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal),
                memoryMap: true);
            return m;
        }
        if (File.Exists(meta))
        {
            var cfg = LlamaConfigJson.ReadMeta(meta);
            using var reader = CheckpointReader.Open(directory);
            if (reader.Contains("output.weight") && reader.Contains("tok_embeddings.weight"))
            {
                using var a = reader.Read("output.weight");
                using var e = reader.Read("tok_embeddings.weight");
                if (a.shape.SequenceEqual(e.shape) && a.equal(e).all().item<bool>()) cfg = cfg with { TieWordEmbeddings = true };
            }
            var m = Create(cfg, device, dtype, devices: devices);
            StateLoader.Load(m, reader,
                keyFor: n => MetaLayout.HfToMeta(n) ?? throw new CheckpointFormatException($"{directory}: no Meta key for parameter '{n}'."),
                transform: (n, t) => MetaLayout.IsRotaryProjection(n)
                    ? MetaLayout.MetaToHfRows(t, n.Contains(".q_proj.") ? cfg.NumHeads : cfg.NumKvHeads)
                    : t,
                ignoreUnexpected: k => cfg.TieWordEmbeddings && k == "output.weight",
                progress: progress);
            return m;
        }
        throw new CheckpointFormatException($"{directory}: neither config.json (Hugging Face layout) nor params.json (Meta layout) found.");
    }

    /// <summary>The tensors of this model under the keys of <paramref name="layout"/>, ready to write.</summary>
    public IReadOnlyList<TensorToWrite> TensorsToWrite(CheckpointLayout layout, ScalarType? dtype = null)
    {
        var list = new List<TensorToWrite>();
        var scales = QuantizedLayers.Scales(this);
        if (scales.Count > 0 && layout != CheckpointLayout.HuggingFace)
            throw new NotSupportedException("q8-quantized models are saved in the Hugging Face layout only.");
        // q8 scales follow all the weights, in the same order, so the weights of a fused projection (q/k/v, gate/up) lie
        // back to back in the file and so do their scales: both then load by mapping the file's pages.
        var scaleList = new List<TensorToWrite>();
        foreach (var (name, p) in named_parameters())
        {
            var dt = dtype ?? p.dtype;
            if (scales.TryGetValue(name, out var scale))
            {
                list.Add(new TensorToWrite(name, p.shape, ScalarType.Int8, () => p.detach(), true));
                scaleList.Add(new TensorToWrite(name + QuantizedLayers.ScaleSuffix, scale.shape, ScalarType.Float16, () => scale.detach(), true));
                continue;
            }
            if (layout == CheckpointLayout.HuggingFace)
            {
                list.Add(new TensorToWrite(name, p.shape, dt, () => p.detach(), true));
                continue;
            }
            string key = MetaLayout.HfToMeta(name) ?? throw new InvalidOperationException($"parameter '{name}' has no Meta key.");
            if (MetaLayout.IsRotaryProjection(name))
            {
                long heads = name.Contains(".q_proj.") ? Config.NumHeads : Config.NumKvHeads;
                list.Add(new TensorToWrite(key, p.shape, dt, () => MetaLayout.HfToMetaRows(p.detach(), heads)));
            }
            else list.Add(new TensorToWrite(key, p.shape, dt, () => p.detach()));
        }
        list.AddRange(scaleList);
        if (layout == CheckpointLayout.Meta && Config.TieWordEmbeddings)
        {
            var e = model.embed_tokens.weight;
            list.Add(new TensorToWrite("output.weight", new long[] { Config.VocabSize, Config.HiddenSize }, dtype ?? e.dtype, () => e.detach().narrow(0, 0, Config.VocabSize)));
        }
        return list;
    }

    /// <summary>
    /// Saves config and weights to <paramref name="directory"/> in <paramref name="layout"/> (HF: <c>config.json</c> +
    /// <c>model.safetensors</c> or shards; Meta: <c>params.json</c> + <c>consolidated.safetensors</c>). Files are written
    /// atomically.
    /// </summary>
    public void Save(string directory, CheckpointLayout layout = CheckpointLayout.HuggingFace, ScalarType? dtype = null, long maxShardBytes = 5L << 30) =>
        Save(directory, layout, dtype, maxShardBytes, null);

    /// <summary>
    /// Writes a random-weight checkpoint in the Hugging Face layout with the weights
    /// <c>Create(config).InitializeWeights(seed, std)</c> would hold, stored as <paramref name="dtype"/>, without ever
    /// holding the model: it is built on the meta device and each weight is drawn, converted and written on its own, so
    /// the largest presets fit in a small machine's memory.
    /// </summary>
    public static void SaveRandom(LlamaConfig config, string directory, long seed, ScalarType dtype = ScalarType.Float32, double std = 0.02,
        long maxShardBytes = 5L << 30)
    {
        using var m = Create(config, torch.device(DeviceType.META), dtype);
        var values = new WeightInit.Stream(m, seed, std);
        m.Save(directory, CheckpointLayout.HuggingFace, dtype, maxShardBytes, t => t with { Produce = () => values.Next(t.Name), Owned = true });
    }

    void Save(string directory, CheckpointLayout layout, ScalarType? dtype, long maxShardBytes, Func<TensorToWrite, TensorToWrite>? values)
    {
        Directory.CreateDirectory(directory);
        var opts = new JsonSerializerOptions { WriteIndented = true };
        var tensors = TensorsToWrite(layout, dtype);
        if (values is not null) tensors = tensors.Select(values).ToList();
        if (layout == CheckpointLayout.HuggingFace)
        {
            var cfg = LlamaConfigJson.ToHuggingFace(Config);
            cfg["torch_dtype"] = (dtype ?? DType) switch { ScalarType.BFloat16 => "bfloat16", ScalarType.Float16 => "float16", _ => "float32" };
            if (QuantizedLayers.Scales(this).Count > 0 && Quantization is not null) cfg["quantization_config"] = Quantization.ToJson();
            SafeTensorsWriter.WriteSharded(directory, tensors, maxShardBytes);
            AtomicFile.WriteAllText(Path.Combine(directory, "config.json"), cfg.ToJsonString(opts));
        }
        else
        {
            SafeTensorsWriter.Write(Path.Combine(directory, "consolidated.safetensors"), tensors);
            AtomicFile.WriteAllText(Path.Combine(directory, "params.json"), LlamaConfigJson.ToMeta(Config).ToJsonString(opts));
        }
    }

    /// <summary>Disposes weights and cached tables.</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing) Rotary.Dispose();
        base.Dispose(disposing);
    }
}

using Llama3.Multimodal.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Speech;

/// <summary>
/// The BEST-RQ self-supervised objective (Llama 3 paper §8.3; Chiu et al. 2022) around a <see
/// cref="ConformerEncoder"/>: normalise the log-mel input with the encoder's stored per-bin statistics; compute targets
/// from the UNMASKED normalised features (4 stacked frames → 16 frozen random-projection codebooks); mask spans of the
/// input and fill them with N(0, 0.1²); run the encoder; 16 linear softmax heads predict the targets; the loss is the
/// mean of the 16 cross-entropies over masked 40 ms frames only. Checkpoint keys: <c>speech_model.best_rq.</c> + the
/// names below (<see cref="KeyFor"/>).
/// </summary>
public sealed class BestRqObjective : nn.Module
{
#pragma warning disable IDE1006 // checkpoint key names
    /// <summary>Frozen target quantizer.</summary>
    public readonly RandomProjectionQuantizer quantizer;
    /// <summary>One softmax head per codebook [size, dim] + bias.</summary>
    public readonly ModuleList<Linear> heads;
#pragma warning restore IDE1006

    /// <summary>The encoder being pretrained (not a child module: it is saved under <c>speech_model.encoder.</c>).</summary>
    public ConformerEncoder Encoder { get; }
    /// <summary>The settings.</summary>
    public BestRqConfig Config { get; }

    /// <summary>Creates the objective for <paramref name="encoder"/>; heads are initialised N(0, 0.02²) from <paramref name="seed"/>.</summary>
    public BestRqObjective(ConformerEncoder encoder, BestRqConfig? config = null, long seed = 0) : base("BestRqObjective")
    {
        Encoder = encoder;
        Config = (config ?? new BestRqConfig()).Validate();
        var p = encoder.input_proj.weight;
        quantizer = new RandomProjectionQuantizer(encoder.Config.StackedDim, Config.NumCodebooks, Config.CodebookSize, Config.CodeDim,
            Config.QuantizerSeed, p.device);
        heads = new ModuleList<Linear>();
        for (int i = 0; i < Config.NumCodebooks; i++) heads.Add(Layers.Linear(encoder.Config.Dim, Config.CodebookSize, true, p.device, p.dtype));
        RegisterComponents();
        if (p.device_type != DeviceType.META) WeightInit.Apply(heads, seed);
    }

    /// <summary>Checkpoint key of one of this objective's parameters (<c>speech_model.best_rq.</c> + name).</summary>
    public static string KeyFor(string name) => "speech_model.best_rq." + name;

    /// <summary>Checkpoint key prefix of the encoder's parameters.</summary>
    public const string EncoderPrefix = "speech_model.encoder.";

    /// <summary>
    /// Writes the pretraining state (encoder under <c>speech_model.encoder.</c>, quantizer and heads under
    /// <c>speech_model.best_rq.</c>) as safetensors into <paramref name="directory"/>, atomically.
    /// </summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        var tensors = Encoder.named_parameters().Select(kv => new TensorToWrite(EncoderPrefix + kv.name, kv.parameter.shape, kv.parameter.dtype, () => kv.parameter.detach()))
            .Concat(named_parameters().Select(kv => new TensorToWrite(KeyFor(kv.name), kv.parameter.shape, kv.parameter.dtype, () => kv.parameter.detach())))
            .ToList();
        SafeTensorsWriter.WriteSharded(directory, tensors, 5L << 30);
    }

    /// <summary>Loads a folder written by <see cref="Save"/> (strict: every key must match).</summary>
    public void Load(string directory)
    {
        using var reader = CheckpointReader.Open(directory);
        StateLoader.Load(Encoder, reader, keyFor: n => EncoderPrefix + n, ignoreUnexpected: k => k.StartsWith("speech_model.best_rq.", StringComparison.Ordinal));
        StateLoader.Load(this, reader, keyFor: KeyFor, ignoreUnexpected: k => k.StartsWith(EncoderPrefix, StringComparison.Ordinal));
    }

    /// <summary>Parameters that training updates: the encoder's (except its frozen statistics) and the heads.</summary>
    public IEnumerable<Parameter> TrainableParameters() =>
        Encoder.parameters().Concat(heads.parameters()).Where(p => p.requires_grad);

    /// <summary>
    /// Llama 3's handling of long utterances: a random window of at most <paramref name="maxFrames"/> (6000 = 60 s)
    /// frames of one utterance's features [T, bins]; shorter inputs are returned whole.
    /// </summary>
    public static Tensor RandomCrop(Tensor features, long maxFrames = 6000, Generator? generator = null)
    {
        long t = features.shape[0];
        if (t <= maxFrames) return features.alias();
        using var scope = NewDisposeScope();
        long start = torch.randint(0, t - maxFrames + 1, new long[] { 1 }, generator: generator).item<long>();
        return features.narrow(0, start, maxFrames).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Computes the loss for log-mel features [B, T, 80] with frame counts [B]. Masks and noise are drawn from
    /// <paramref name="generator"/> (CPU generator; null = the global one).
    /// </summary>
    public BestRqLoss Loss(Tensor features, Tensor lengths, Generator? generator = null)
    {
        using var scope = NewDisposeScope();
        var ec = Encoder.Config;
        var device = Encoder.input_proj.weight.device;
        long b = features.shape[0], t = features.shape[1];
        var len = lengths.to(ScalarType.Int64, device);
        var valid = SequenceMask.Valid(len, t, device).unsqueeze(-1);                           // [B, T, 1]
        var x = Encoder.feature_norm.forward(features.to(ScalarType.Float32, device)) * valid.to(ScalarType.Float32);

        long t4 = ec.OutputFrames(t), tPad = t4 * ec.StackFrames;
        var stacked = nn.functional.pad(x, new long[] { 0, 0, 0, tPad - t }).reshape(b, t4, ec.StackedDim);
        var targets = quantizer.Quantize(stacked);                                               // [B, books, T4]

        var mask = SpanMasker.Sample(len, t, Config.MaskStartProbability, Config.MaskSpan, generator);          // [B, T] CPU
        using var noiseStd = Config.MaskNoiseStd.ToScalar();
        var noise = torch.randn(new long[] { b, t, ec.MelBins }, generator: generator).mul_(noiseStd);
        var maskD = mask.to(device);
        var masked = torch.where(maskD.unsqueeze(-1), noise.to(device), x);

        var (h, len4) = Encoder.ForwardNormalized(masked, len);                                 // [B, T4, d]
        var mask4 = nn.functional.pad(maskD.to(ScalarType.Int32), new long[] { 0, tPad - t }).view(b, t4, ec.StackFrames).sum(-1).gt(Scalars.Zero);
        var flat = mask4.reshape(-1).nonzero().squeeze(1);                                       // masked 40 ms frames
        long m = flat.shape[0];
        long total = len4.sum().item<long>();
        if (m == 0)
            return new BestRqLoss { Loss = h.sum().mul(Scalars.Zero).to(ScalarType.Float32).MoveToOuterDisposeScope(), MaskedFrames = 0, TotalFrames = total };
        var hm = h.reshape(-1, ec.Dim).index_select(0, flat);                                    // [M, d]
        var tm = targets.permute(0, 2, 1).reshape(-1, Config.NumCodebooks).index_select(0, flat);  // [M, books]
        Tensor? loss = null;
        long correct = 0;
        for (int c = 0; c < Config.NumCodebooks; c++)
        {
            var logits = heads[c].forward(hm).to(ScalarType.Float32);
            var target = tm.select(1, c);
            var ce = nn.functional.cross_entropy(logits, target);
            loss = loss is null ? ce : Scalars.Add(loss, ce);
            using (torch.no_grad()) correct += logits.argmax(-1).eq(target).sum().item<long>();
        }
        using var books = ((long)Config.NumCodebooks).ToScalar();
        var mean = loss!.div(books);
        return new BestRqLoss
        {
            Loss = mean.MoveToOuterDisposeScope(),
            MaskedFrames = m,
            TotalFrames = total,
            Accuracy = (double)correct / (m * Config.NumCodebooks),
        };
    }
}

using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>
/// Fills a module's parameters from a checkpoint, tensor by tensor. Strict by default: every parameter must be found
/// with the right shape and every checkpoint key must be used; all problems are reported together, each key named.
/// </summary>
public static class StateLoader
{
    /// <summary>Bytes of a float checkpoint tensor read at a time when it is quantized while loading (settable for tests).</summary>
    internal static long QuantizeSliceBytes { get; set; } = 64L << 20;

    /// <summary>Loads <paramref name="module"/> from <paramref name="reader"/>.</summary>
    /// <param name="module">Target module; parameter names are the model's (HF) names.</param>
    /// <param name="reader">Checkpoint.</param>
    /// <param name="keyFor">Checkpoint key for a parameter name (identity for HF layout).</param>
    /// <param name="transform">Optional transform of a read tensor before copying (e.g. rotary permutation), given the parameter name.</param>
    /// <param name="strict">Fail on missing, unexpected or mis-shaped keys.</param>
    /// <param name="ignoreUnexpected">Checkpoint keys that may be present without a parameter (e.g. a tied <c>output.weight</c>).</param>
    /// <param name="progress">Called after each tensor with (done, total).</param>
    /// <param name="memoryMap">
    /// Let CPU parameters stored in the checkpoint's dtype use the file's pages directly (a private copy-on-write
    /// mapping: no read, no copy, no zero-filled allocation; see <see cref="MapInPlace"/>). Meant for inference;
    /// parameters that cannot be mapped are read as usual.
    /// </param>
    public static void Load(nn.Module module, CheckpointReader reader, Func<string, string>? keyFor = null,
        Func<string, Tensor, Tensor>? transform = null, bool strict = true, Func<string, bool>? ignoreUnexpected = null,
        Action<int, int>? progress = null, bool memoryMap = false)
    {
        keyFor ??= s => s;
        var parameters = module.named_parameters().ToList();
        // q8 weights (int8 parameters with a weight_scale buffer) read int8 + scale keys, or quantize a float tensor.
        var scales = QuantizedLayers.Scales(module);
        var missing = new List<string>();
        var misShaped = new List<string>();
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, p) in parameters)
        {
            string key = keyFor(name);
            if (!reader.Contains(key)) { missing.Add(key); continue; }
            var info = reader.Info(key);
            if (!info.Shape.SequenceEqual(p.shape)) misShaped.Add($"{key}: checkpoint {info.ShapeText}, model [{string.Join(", ", p.shape)}]");
            used.Add(key);
            if (scales.TryGetValue(name, out var scale) && info.DType == ScalarType.Int8)
            {
                string sk = key + QuantizedLayers.ScaleSuffix;
                if (!reader.Contains(sk)) missing.Add(sk);
                else
                {
                    used.Add(sk);
                    var si = reader.Info(sk);
                    if (!si.Shape.SequenceEqual(scale.shape) || si.DType != ScalarType.Float16)
                        misShaped.Add($"{sk}: checkpoint {SafeTensorDType.Name(si.DType)} {si.ShapeText}, model F16 [{string.Join(", ", scale.shape)}]");
                }
            }
            else if (info.DType == ScalarType.Int8 && p.dtype != ScalarType.Int8)
                misShaped.Add($"{key}: the checkpoint is q8-quantized but the model was not created for q8 weights");
        }
        var unexpected = reader.Keys.Where(k => !used.Contains(k) && (ignoreUnexpected == null || !ignoreUnexpected(k))).OrderBy(k => k, StringComparer.Ordinal).ToList();
        if (misShaped.Count > 0 || strict && (missing.Count > 0 || unexpected.Count > 0))
        {
            var msg = new System.Text.StringBuilder($"{reader.Directory}: checkpoint does not match the model.");
            if (missing.Count > 0) msg.Append($" Missing ({missing.Count}): ").AppendJoin(", ", missing.Take(20)).Append(missing.Count > 20 ? ", …" : "").Append('.');
            if (unexpected.Count > 0) msg.Append($" Unexpected ({unexpected.Count}): ").AppendJoin(", ", unexpected.Take(20)).Append(unexpected.Count > 20 ? ", …" : "").Append('.');
            if (misShaped.Count > 0) msg.Append($" Wrong shape ({misShaped.Count}): ").AppendJoin("; ", misShaped.Take(20)).Append('.');
            throw new CheckpointFormatException(msg.ToString());
        }
        using var noGrad = torch.no_grad();
        var mapped = memoryMap && transform == null ? MapInPlace(module, reader, parameters, keyFor, scales) : new HashSet<string>();
        void ReadScale(string name, string key, Tensor scale)
        {
            if (!mapped.Contains(name + QuantizedLayers.ScaleSuffix)) reader.ReadInto(key + QuantizedLayers.ScaleSuffix, scale);
        }
        int done = 0;
        Tensor? sliceBuffer = null;
        try
        {
            foreach (var (name, p) in parameters)
            {
                string key = keyFor(name);
                if (!reader.Contains(key)) continue;
                if (mapped.Contains(name))
                {
                    // A q8 weight mapped from the file still needs its scales.
                    if (scales.TryGetValue(name, out var mappedScale)) ReadScale(name, key, mappedScale);
                    progress?.Invoke(++done, parameters.Count);
                    continue;
                }
                if (scales.TryGetValue(name, out var scale))
                {
                    if (reader.Info(key).DType == ScalarType.Int8)
                    {
                        reader.ReadInto(key, p);
                        ReadScale(name, key, scale);
                    }
                    else if (transform == null && p.dim() == 2)
                    {
                        // Slices of rows (about 64 MB each) read and quantized in turn: the float tensor is never in memory
                        // whole, so loading an f32 or bf16 checkpoint with q8 peaks near the q8 size. One buffer serves
                        // every slice of every tensor of a dtype: nothing is allocated (and zero-filled) per slice.
                        var info = reader.Info(key);
                        long rows = p.shape[0], k = p.shape[1], rowBytes = Math.Max(1, k * SafeTensorDType.Size(info.DType));
                        long slice = Math.Max(1, QuantizeSliceBytes / rowBytes);
                        long need = Math.Min(slice, rows) * k;
                        if (sliceBuffer is null || sliceBuffer.dtype != info.DType || sliceBuffer.numel() < need)
                        {
                            sliceBuffer?.Dispose();
                            sliceBuffer = torch.empty(Math.Max(need, QuantizeSliceBytes / SafeTensorDType.Size(info.DType)), dtype: info.DType).DetachFromDisposeScope();
                        }
                        for (long r0 = 0; r0 < rows; r0 += slice)
                        {
                            long n = Math.Min(slice, rows - r0);
                            using var flat = sliceBuffer.narrow(0, 0, n * k);
                            using var t = flat.view(n, k);
                            reader.ReadRowsInto(key, r0, t);
                            using var qs = p.narrow(0, r0, n);
                            using var ss = scale.narrow(0, r0, n);
                            Q8.QuantizeInto(t, qs, ss);
                        }
                    }
                    else
                    {
                        // One tensor at a time in its stored dtype (a bf16 checkpoint is never widened whole).
                        using var scope = NewDisposeScope();
                        var t = reader.Read(key);
                        if (transform != null) t = transform(name, t);
                        Q8.QuantizeInto(t, p, scale);
                    }
                }
                else if (transform == null) reader.ReadInto(key, p);
                else
                {
                    using var scope = NewDisposeScope();
                    var t = transform(name, reader.Read(key));
                    p.copy_(t);
                }
                progress?.Invoke(++done, parameters.Count);
            }
        }
        finally { sliceBuffer?.Dispose(); }
    }

    sealed record Candidate(string Name, Tensor Param, SafeTensorsFile File, long Begin, long Bytes, long Address);

    sealed record Alias(Tensor Tensor, long Address, long Bytes);

    /// <summary>
    /// Points parameters at the checkpoint file's pages instead of reading them. Parameters are grouped into runs that
    /// are consecutive both in memory and in one file, in the same order and spacing (so the fused q/k/v and gate/up
    /// storages of the decoder, whose parameters are row ranges of one tensor, map as a whole when the file stores
    /// their rows in that order, as this library's writer does). A run is mapped only when every tensor of the
    /// module tree that overlaps its memory (parameters, buffers and tensors the modules keep in fields, such as the
    /// fused weights) lies entirely inside it; each of those is then re-pointed at the same place in the mapping, so
    /// the fused views stay fused. Returns the names of the mapped parameters.
    /// </summary>
    static HashSet<string> MapInPlace(nn.Module module, CheckpointReader reader, List<(string Name, TorchSharp.Modules.Parameter P)> parameters,
        Func<string, string> keyFor, Dictionary<string, Tensor> scales)
    {
        var result = new HashSet<string>(StringComparer.Ordinal);
        var candidates = new List<Candidate>();
        void Consider(string name, string key, Tensor p)
        {
            if (p.device_type != DeviceType.CPU || !p.is_contiguous() || p.numel() == 0 || !reader.Contains(key)) return;
            var info = reader.Info(key);
            if (info.DType != p.dtype || !info.Shape.SequenceEqual(p.shape)) return;
            candidates.Add(new Candidate(name, p, reader.FileOf(key), info.Begin, info.End - info.Begin, MappedTensors.Address(p)));
        }
        foreach (var (name, p) in parameters) Consider(name, keyFor(name), p);
        // q8 scales (buffers) map like parameters; a mapped scale is reported as "<parameter>_scale".
        foreach (var (name, scale) in scales)
            Consider(name + QuantizedLayers.ScaleSuffix, keyFor(name) + QuantizedLayers.ScaleSuffix, scale);
        if (candidates.Count == 0) return result;
        candidates.Sort((a, b) => a.Address.CompareTo(b.Address));
        var aliases = Aliases(module);
        int i = 0;
        while (i < candidates.Count)
        {
            int j = i + 1;
            while (j < candidates.Count)
            {
                Candidate prev = candidates[j - 1], next = candidates[j];
                if (next.File != prev.File || next.Param.dtype != prev.Param.dtype
                    || next.Address != prev.Address + prev.Bytes || next.Begin != prev.Begin + prev.Bytes) break;
                j++;
            }
            var run = candidates.GetRange(i, j - i);
            i = j;
            long start = run[0].Address, end = run[^1].Address + run[^1].Bytes;
            var inside = new List<Alias>();
            bool clean = true;
            foreach (var a in aliases)
            {
                if (a.Address + a.Bytes <= start || a.Address >= end) continue;
                if (a.Address < start || a.Address + a.Bytes > end || a.Tensor.dtype != run[0].Param.dtype
                    || (a.Address - start) % a.Tensor.element_size() != 0) { clean = false; break; }
                inside.Add(a);
            }
            if (!clean) continue;
            using var region = run[0].File.Map(run[0].Begin, end - start, run[0].Param.dtype);
            if (region is null) continue;
            long elem = run[0].Param.element_size();
            foreach (var a in inside)
            {
                using var view = region.as_strided(a.Tensor.shape, a.Tensor.stride(), (a.Address - start) / elem);
                a.Tensor.set_(view);
            }
            foreach (var c in run) result.Add(c.Name);
        }
        return result;
    }

    /// <summary>Every contiguous CPU tensor the module tree holds: parameters, buffers and tensor fields, once each, with its memory range.</summary>
    static List<Alias> Aliases(nn.Module module)
    {
        var seen = new HashSet<IntPtr>();
        var list = new List<Alias>();
        void Add(Tensor? t)
        {
            if (t is null || t.IsInvalid || t.device_type != DeviceType.CPU || t.numel() == 0 || !seen.Add(t.Handle)) return;
            if (!t.is_contiguous())
            {
                // A strided view: its whole extent counts as one range, so a run covering part of it is never mapped.
                long lo = 0, hi = 0;
                for (int d = 0; d < t.dim(); d++)
                {
                    long span = (t.shape[d] - 1) * t.stride(d);
                    if (span < 0) lo += span; else hi += span;
                }
                long es = t.element_size(), addr = MappedTensors.Address(t);
                list.Add(new Alias(t, addr + lo * es, (hi - lo + 1) * es));
                return;
            }
            list.Add(new Alias(t, MappedTensors.Address(t), t.numel() * t.element_size()));
        }
        foreach (var (_, p) in module.named_parameters()) Add(p);
        foreach (var (_, b) in module.named_buffers()) Add(b);
        foreach (var m in module.modules())
            for (var type = m.GetType(); type is not null && type != typeof(nn.Module); type = type.BaseType)
                foreach (var f in type.GetFields(System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.Public
                             | System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.DeclaredOnly))
                    if (typeof(Tensor).IsAssignableFrom(f.FieldType)) Add(f.GetValue(m) as Tensor);
        return list;
    }
}

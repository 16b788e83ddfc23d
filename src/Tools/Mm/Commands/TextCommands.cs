using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Tools.Mm.Commands;

/// <summary>Text-model commands: init, generate, chat, logits, convert, tokenize.</summary>
public static class TextCommands
{
    /// <summary>All text commands.</summary>
    public static IEnumerable<Command> All(CliIO io) => new[] { Init(io), Generate(io), Chat(io), Logits(io), Convert(io), Tokenize(io) };

    /// <summary>The tokenizer of a model folder: its own file, else the built-in Llama 3 vocabulary when the sizes agree.</summary>
    public static Llama3Tokenizer TokenizerFor(string dir, int vocabSize) =>
        CheckTokenizer(Llama3Tokenizer.FromModelDirectory(dir) ?? Llama3Tokenizer.Default, dir, vocabSize);

    static Llama3Tokenizer CheckTokenizer(Llama3Tokenizer tok, string dir, int vocabSize)
    {
        if (tok.VocabSize > vocabSize)
            throw new CliException($"{dir}: the tokenizer has {tok.VocabSize} ids but the model's vocabulary has only {vocabSize}; put the model's tokenizer.model in the folder.");
        return tok;
    }

    static Command Init(CliIO io)
    {
        var config = new Option<string>("--config") { Description = $"preset ({string.Join(", ", TextPresets.Names)}) or a config.json / params.json path", Required = true };
        var seed = new Option<long>("--seed") { Description = "random seed of the weights", DefaultValueFactory = _ => 0 };
        var outDir = new Option<string>("--out") { Description = "output folder", Required = true };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "tokenizer.model or tokenizer.json to copy into the folder (default: the built-in Llama 3 vocabulary when the vocabulary size is 128256)" };
        var dtype = new Option<string>("--dtype") { Description = "stored dtype: f32, bf16 or f16", DefaultValueFactory = _ => "f32" };
        var cmd = new Command("init", "Write a random-weight checkpoint (HF layout: config.json, model.safetensors, tokenizer) from a preset or a config file; weights are drawn and written one tensor at a time, so the model never has to fit in memory. Vision presets (tiny-vision, …) and speech presets (tiny-speech, …) are accepted too.")
        { config, seed, outDir, tokenizer, dtype };
        cmd.SetAction(p => CommonOptions.Guard(io, () =>
        {
            string c = p.GetValue(config)!;
            LlamaConfig cfg = File.Exists(c)
                ? (Path.GetFileName(c) == "params.json" ? LlamaConfigJson.ReadMeta(c) : LlamaConfigJson.ReadHuggingFace(c))
                : TextPresets.Get(c);
            string dir = p.GetValue(outDir)!;
            var dt = SafeTensorDType.ParseUser(p.GetValue(dtype)!);
            LlamaForCausalLM.SaveRandom(cfg, dir, p.GetValue(seed), dt);
            CopyTokenizer(p.GetValue(tokenizer), cfg.VocabSize, dir);
            WriteGenerationConfig(dir, cfg);
            io.Out.WriteLine($"wrote {dir} ({cfg.ParameterCount():N0} parameters)");
            return 0;
        }));
        return cmd;
    }

    internal static void CopyTokenizer(string? given, int vocab, string dir)
    {
        if (given != null)
        {
            Llama3Tokenizer.FromFile(given); // validate before copying
            File.Copy(given, Path.Combine(dir, Path.GetFileName(given).EndsWith(".json", StringComparison.Ordinal) ? "tokenizer.json" : "tokenizer.model"), true);
        }
        else if (vocab == 128256)
        {
            using var s = typeof(Llama3Tokenizer).Assembly.GetManifestResourceStream("Llama3.Multimodal.Text.tokenizer.model")!;
            using var f = File.Create(Path.Combine(dir, "tokenizer.model"));
            s.CopyTo(f);
        }
    }

    static void WriteGenerationConfig(string dir, LlamaConfig cfg)
    {
        var o = new JsonObject
        {
            ["bos_token_id"] = cfg.BosTokenId,
            ["eos_token_id"] = new JsonArray(cfg.EosTokenIds.Select(i => (JsonNode)JsonValue.Create(i)).ToArray()),
            ["do_sample"] = false,
        };
        AtomicFile.WriteAllText(Path.Combine(dir, "generation_config.json"), o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    static Command Generate(CliIO io)
    {
        var model = CommonOptions.Model();
        var prompt = new Option<string>("--prompt") { Description = "prompt text", Required = true };
        var chat = new Option<bool>("--chat") { Description = "wrap the prompt as a user message in the Llama 3 chat format" };
        var stats = new Option<bool>("--stats") { Description = "print prefill/decode tokens/s and peak memory as one JSON line on stderr" };
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        var devices = CommonOptions.Devices();
        var quantize = CommonOptions.Quantize();
        var keepEmb = CommonOptions.KeepEmbeddings();
        var gen = GenerationCliOptions.Create();
        var cmd = new Command("generate", "Generate text from a prompt, streaming tokens to stdout. With --image (or a vision model) this runs vision-generate; see its --help.") { model, prompt, chat, stats, device, dtype, devices, quantize, keepEmb };
        gen.AddTo(cmd);
        cmd.SetAction(p => CommonOptions.Guard(io, () =>
        {
            var (dev, dt) = CommonOptions.DeviceAndDType(p.GetValue(device)!, p.GetValue(dtype));
            var options = gen.Read(p);
            string dir = p.GetValue(model)!;
            var clock = new FirstTokenClock();
            // The tokenizer is read on another core while the weights are placed.
            var reading = Task.Run(() => Llama3Tokenizer.FromModelDirectory(dir) ?? Llama3Tokenizer.Default);
            using var m = LlamaForCausalLM.FromPretrained(dir, CommonOptions.Load(dev, dt, p.GetValue(quantize), p.GetValue(keepEmb),
                CommonOptions.ParseDevices(p.GetValue(devices), () => CommonOptions.LayersOf(dir), io.Err)));
            double loadS = clock.Elapsed;
            var tok = CheckTokenizer(reading.GetAwaiter().GetResult(), dir, m.Config.VocabSize);
            string text = p.GetValue(prompt)!;
            var ids = p.GetValue(chat)
                ? new ChatFormat(tok).EncodeDialog(new[] { new ChatMessage("user", text) })
                : tok.Encode(text, bos: true);
            var g = new TextGenerator(m, tok);
            var dec = tok.NewStreamingDecoder();
            var r = g.Generate(ids, options, id => { clock.Token(); io.Out.Write(dec.Push(id)); io.Out.Flush(); });
            double firstS = clock.FirstTokenSeconds;
            io.Out.WriteLine(dec.Flush());
            if (p.GetValue(stats)) io.Err.WriteLine(StatsJson(r, loadS, firstS));
            return 0;
        }));
        return cmd;
    }

    /// <summary>
    /// The <c>--stats</c> line: <c>load_s</c> (model load), <c>first_token_s</c> (from the start of loading to the first
    /// generated token), prefill and decode times and rates, and peak resident memory; with <paramref name="encoder"/>,
    /// also <c>encoder_s</c> (the media encoders, before prefill).
    /// </summary>
    internal static string StatsJson(GenerationResult r, double loadSeconds, double firstTokenSeconds, bool encoder = false)
    {
        var o = new JsonObject
        {
            ["load_s"] = Math.Round(loadSeconds, 3),
            ["first_token_s"] = Math.Round(firstTokenSeconds, 3),
        };
        if (encoder) o["encoder_s"] = Math.Round(r.EncoderSeconds, 3);
        o["prompt_tokens"] = r.PromptTokens;
        o["generated_tokens"] = r.Tokens.Count;
        o["prefill_s"] = Math.Round(r.PrefillSeconds, 4);
        o["prefill_tokens_per_s"] = Math.Round(r.PromptTokens / Math.Max(r.PrefillSeconds, 1e-9), 2);
        o["decode_s"] = Math.Round(r.DecodeSeconds, 4);
        o["decode_tokens_per_s"] = Math.Round(r.DecodeSteps / Math.Max(r.DecodeSeconds, 1e-9), 2);
        o["peak_rss_mb"] = Math.Round(CommonOptions.PeakRssBytes() / 1048576.0, 1);
        o["finish_reason"] = r.FinishReason;
        return o.ToJsonString();
    }

    static Command Chat(CliIO io)
    {
        var model = CommonOptions.Model();
        var system = new Option<string?>("--system") { Description = "system prompt" };
        var device = CommonOptions.Device();
        var dtype = CommonOptions.DType();
        var devices = CommonOptions.Devices();
        var gen = GenerationCliOptions.Create();
        var quantize = CommonOptions.Quantize();
        var keepEmb = CommonOptions.KeepEmbeddings();
        var cmd = new Command("chat", "Interactive chat on stdin/stdout (empty line or /exit ends; /reset clears the dialog).") { model, system, device, dtype, devices, quantize, keepEmb };
        gen.AddTo(cmd);
        cmd.SetAction(p => CommonOptions.Guard(io, () =>
        {
            var (dev, dt) = CommonOptions.DeviceAndDType(p.GetValue(device)!, p.GetValue(dtype));
            string dir = p.GetValue(model)!;
            using var m = LlamaForCausalLM.FromPretrained(dir, CommonOptions.Load(dev, dt, p.GetValue(quantize), p.GetValue(keepEmb),
                CommonOptions.ParseDevices(p.GetValue(devices), () => CommonOptions.LayersOf(dir), io.Err)));
            var tok = TokenizerFor(dir, m.Config.VocabSize);
            var fmt = new ChatFormat(tok);
            var g = new TextGenerator(m, tok);
            var options = gen.Read(p);
            var dialog = new List<ChatMessage>();
            if (p.GetValue(system) is string s) dialog.Add(new ChatMessage("system", s));
            while (true)
            {
                io.Out.Write("> ");
                io.Out.Flush();
                string? line = io.In.ReadLine();
                if (line is null || line.Trim() is "" or "/exit") break;
                if (line.Trim() == "/reset") { dialog.RemoveAll(d => d.Role != "system"); continue; }
                dialog.Add(new ChatMessage("user", line));
                var ids = fmt.EncodeDialog(dialog);
                if (ids.Count + options.MaxNewTokens > m.Config.MaxPositionEmbeddings)
                    throw new CliException($"the dialog ({ids.Count} tokens) no longer fits the context of {m.Config.MaxPositionEmbeddings}; use /reset.");
                var dec = tok.NewStreamingDecoder();
                var r = g.Generate(ids, options, id => { io.Out.Write(dec.Push(id)); io.Out.Flush(); });
                io.Out.WriteLine(dec.Flush());
                dialog.Add(new ChatMessage("assistant", r.Text));
            }
            return 0;
        }));
        return cmd;
    }

    static Command Logits(CliIO io)
    {
        var model = CommonOptions.Model();
        var idsOpt = new Option<string>("--ids") { Description = "comma-separated token ids, e.g. 128000,9906,1917", Required = true };
        var positions = new Option<string>("--positions") { Description = "all or last", DefaultValueFactory = _ => "all" };
        var outFile = new Option<string?>("--out") { Description = "write the JSON here instead of stdout" };
        var cmd = new Command("logits", "One forward pass (f32 on CPU); prints {\"logits\": [[…vocab floats…] per position]}.") { model, idsOpt, positions, outFile };
        cmd.SetAction(p => CommonOptions.Guard(io, () =>
        {
            string pos = p.GetValue(positions)!;
            if (pos is not ("all" or "last")) throw new CliException($"--positions must be all or last, got '{pos}'.");
            long[] ids;
            try { ids = p.GetValue(idsOpt)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => long.Parse(s, CultureInfo.InvariantCulture)).ToArray(); }
            catch (FormatException) { throw new CliException("--ids must be comma-separated integers."); }
            if (ids.Length == 0) throw new CliException("--ids is empty.");
            using var m = LlamaForCausalLM.FromPretrained(p.GetValue(model)!, CPU, ScalarType.Float32);
            foreach (long id in ids)
                if (id < 0 || id >= m.Config.EmbeddingRows) throw new CliException($"token id {id} is outside the model's embedding ({m.Config.EmbeddingRows} rows).");
            if (ids.Length > m.Config.MaxPositionEmbeddings) throw new CliException($"{ids.Length} ids exceed the model's context of {m.Config.MaxPositionEmbeddings}.");
            using var _ = no_grad();
            using var logits = m.Forward(tensor(ids, new long[] { 1, ids.Length }), new ForwardOptions { LastOnly = pos == "last" });
            var rows = logits[0];
            long t = rows.shape[0], v = rows.shape[1];
            float[] data = rows.contiguous().data<float>().ToArray();
            using var sw = new StringWriter(CultureInfo.InvariantCulture);
            sw.Write("{\"logits\": [");
            for (long i = 0; i < t; i++)
            {
                if (i > 0) sw.Write(", ");
                sw.Write('[');
                for (long j = 0; j < v; j++)
                {
                    if (j > 0) sw.Write(',');
                    sw.Write(data[i * v + j].ToString("R", CultureInfo.InvariantCulture));
                }
                sw.Write(']');
            }
            sw.Write("]}");
            if (p.GetValue(outFile) is string f) AtomicFile.WriteAllText(f, sw.ToString());
            else io.Out.WriteLine(sw.ToString());
            return 0;
        }));
        return cmd;
    }

    static Command Convert(CliIO io)
    {
        var from = new Option<string>("--from") { Description = "layout of the input: hf or meta", Required = true };
        var to = new Option<string>("--to") { Description = "layout to write: hf or meta", Required = true };
        var model = CommonOptions.Model();
        var outDir = new Option<string>("--out") { Description = "output folder", Required = true };
        var dtype = new Option<string?>("--dtype") { Description = "stored dtype of the output (default: as loaded, f32)" };
        var cmd = new Command("convert", "Convert a checkpoint between the Hugging Face and Meta layouts (key names and the q/k rotary row permutation).") { from, to, model, outDir, dtype };
        cmd.SetAction(p => CommonOptions.Guard(io, () =>
        {
            CheckpointLayout Parse(string s) => s switch
            {
                "hf" => CheckpointLayout.HuggingFace,
                "meta" => CheckpointLayout.Meta,
                _ => throw new CliException($"layout must be hf or meta, got '{s}'."),
            };
            var src = Parse(p.GetValue(from)!);
            var dst = Parse(p.GetValue(to)!);
            string dir = p.GetValue(model)!;
            string expected = src == CheckpointLayout.Meta ? "params.json" : "config.json";
            if (!File.Exists(Path.Combine(dir, expected))) throw new CliException($"{dir}: --from {p.GetValue(from)} needs {expected} in the folder.");
            string outPath = p.GetValue(outDir)!;
            if (Path.GetFullPath(outPath) == Path.GetFullPath(dir)) throw new CliException("--out must differ from --model: checkpoints are never rewritten in place.");
            using var m = LlamaForCausalLM.FromPretrained(dir, CPU, ScalarType.Float32);
            ScalarType? dt = p.GetValue(dtype) is string d ? SafeTensorDType.ParseUser(d) : null;
            m.Save(outPath, dst, dt);
            foreach (var f in new[] { "tokenizer.model", "tokenizer.json", "tokenizer_config.json", "generation_config.json" })
                if (File.Exists(Path.Combine(dir, f))) File.Copy(Path.Combine(dir, f), Path.Combine(outPath, f), true);
            io.Out.WriteLine($"wrote {outPath} ({dst} layout)");
            return 0;
        }));
        return cmd;
    }

    static Command Tokenize(CliIO io)
    {
        var tokenizer = new Option<string?>("--tokenizer") { Description = "tokenizer.model or tokenizer.json (default: the built-in Llama 3 vocabulary)" };
        var text = new Option<string?>("--text") { Description = "text to encode" };
        var file = new Option<string?>("--file") { Description = "JSON array of strings to encode" };
        var bos = new Option<bool>("--bos") { Description = "prepend <|begin_of_text|>" };
        var cmd = new Command("tokenize", "Encode text to token ids (JSON array; --file gives an array of arrays).") { tokenizer, text, file, bos };
        cmd.SetAction(p => CommonOptions.Guard(io, () =>
        {
            var tok = p.GetValue(tokenizer) is string path ? Llama3Tokenizer.FromFile(path) : Llama3Tokenizer.Default;
            bool addBos = p.GetValue(bos);
            if (p.GetValue(text) is string s && p.GetValue(file) is null)
            {
                io.Out.WriteLine(JsonSerializer.Serialize(tok.Encode(s, bos: addBos)));
                return 0;
            }
            if (p.GetValue(file) is string f && p.GetValue(text) is null)
            {
                if (!File.Exists(f)) throw new CliException($"{f}: file not found.");
                string[]? items;
                try { items = JsonSerializer.Deserialize<string[]>(File.ReadAllText(f), new JsonSerializerOptions { MaxDepth = 4 }); }
                catch (JsonException e) { throw new CliException($"{f}: expected a JSON array of strings ({e.Message})."); }
                if (items is null || items.Any(i => i is null)) throw new CliException($"{f}: expected a JSON array of strings.");
                io.Out.WriteLine(JsonSerializer.Serialize(items.Select(i => tok.Encode(i, bos: addBos))));
                return 0;
            }
            throw new CliException("give exactly one of --text or --file.");
        }));
        return cmd;
    }
}

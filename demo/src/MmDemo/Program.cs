using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Training;

namespace Llama3.Multimodal.Demo.Tool;

/// <summary>Entry point of <c>mm-demo</c>: argument parsing and printing only; behaviour lives in Llama3.Multimodal.Demo.</summary>
public static class Program
{
    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>Runs the command line.</summary>
    public static int Main(string[] args)
    {
        CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
        DemoExtensions.Register();
        var root = new RootCommand("mm-demo: the synthetic demo of Llama3.Multimodal: its data (`make-data`), training runs with the demo's " +
            "auxiliary losses (`train`), grammar-aware evaluation and probes (`eval`), and the one-command reproduction of the shipped models (`reproduce`).");
        root.Subcommands.Add(MakeDataCommand());
        root.Subcommands.Add(TrainCommand());
        root.Subcommands.Add(EvalCommand());
        root.Subcommands.Add(ExtractLmCommand());
        root.Subcommands.Add(ConcatCommand());
        root.Subcommands.Add(ReproduceCommand());
        return root.Parse(args).Invoke();
    }

    static Command MakeDataCommand()
    {
        var cmd = new Command("make-data", "Synthetic training data for the demo and the tests, with a demo config per recipe.");
        foreach (var kind in DemoData.Kinds)
        {
            var sub = new Command(kind, kind switch
            {
                "text" => "A small text corpus (text.jsonl, text-eval.jsonl), chat dialogs (chat.jsonl), preference pairs (pairs.jsonl) and the text recipes' demo configs.",
                "images" => "Rendered shape/word scenes with captions: images/, images-eval/ (other seed), images-heldout/ (unseen colour+shape pairs), vision-stage1/2 demo configs.",
                "speech" => "espeak-ng utterances with transcripts: speech/, speech-eval/, speech-heldout/ (unseen voice and speed), speech-stage1/2 demo configs.",
                "dialogues" => "Image dialogues in the Llama 3.2 Vision Instruct layout with question types and preference records: dialogues/, dialogues-eval/ (other seed); " +
                    "text dialogues for the instruct decoder's sft (instruct-chat.jsonl), \"Repeat after me\" prompts (repeat-eval.jsonl) and sft-instruct.json.",
                "video" => "ffmpeg clips of moving/appearing/recolouring shapes with time-ordered captions: videos/, videos-eval/, the video demo config.",
                _ => "Everything: text corpus, images, speech and video with their demo configs.",
            });
            var outDir = new Option<DirectoryInfo>("--out", "-o") { Description = "Output folder.", Required = true };
            var seed = new Option<int>("--seed") { Description = "Generator seed (evaluation sets use seed + 1, held-out sets seed + 2).", DefaultValueFactory = _ => 1234 };
            var count = new Option<int?>("--count") { Description = "Training items (default: text documents 2000, images 2000, speech 600, video 300)." };
            var evalCount = new Option<int?>("--eval-count") { Description = "Items per evaluation/held-out set (default: a tenth of --count)." };
            var size = new Option<int>("--size") { Description = "Image and video side in pixels.", DefaultValueFactory = _ => 64 };
            var kinds = new Option<string?>("--kinds") { Description = "Image scene kinds, comma-separated (single, count, overlap, word, number; default: all, weighted 40/20/20/12/8 %). Only word and number: no held-out set." };
            foreach (var o in new Option[] { outDir, seed, count, evalCount, size }) sub.Options.Add(o);
            bool images = kind is "images" or "all" or "dialogues";
            if (images) sub.Options.Add(kinds);
            string k = kind;
            sub.SetAction(r => Guard(() =>
            {
                var imageKinds = images ? r.GetValue(kinds)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : null;
                foreach (var f in DemoData.Write(k, r.GetValue(outDir)!.FullName, r.GetValue(seed), r.GetValue(count), r.GetValue(evalCount), r.GetValue(size), imageKinds))
                    Console.WriteLine(f);
                return 0;
            }));
            cmd.Subcommands.Add(sub);
        }
        cmd.Subcommands.Add(MixCommand());
        cmd.Subcommands.Add(CorpusCommand());
        return cmd;
    }

    static Command MixCommand()
    {
        var cmd = new Command("mix", "An image training mix: each --part made into OUT/pSEED (training, evaluation and held-out sets, as `make-data images`), " +
            "their training records joined in OUT/mix.jsonl.");
        var outDir = new Option<DirectoryInfo>("--out", "-o") { Description = "Output folder.", Required = true };
        var parts = new Option<string[]>("--part") { Description = "SEED:SIDE:COUNT[:KINDS] (repeatable): COUNT images of SIDE px made with SEED; KINDS comma-separated scene kinds or all.", Required = true };
        var evalCount = new Option<int>("--eval-count") { Description = "Images per evaluation/held-out set of each part.", DefaultValueFactory = _ => 32 };
        foreach (var o in new Option[] { outDir, parts, evalCount }) cmd.Options.Add(o);
        cmd.SetAction(r => Guard(() =>
        {
            var p = r.GetValue(parts)!.Select(DemoManifests.MixPart.Parse).ToList();
            Console.WriteLine(DemoManifests.MakeImageMix(r.GetValue(outDir)!.FullName, p, r.GetValue(evalCount)));
            return 0;
        }));
        return cmd;
    }

    static Command CorpusCommand()
    {
        var cmd = new Command("corpus", "The decoder's corpus: a make-data text folder's text.jsonl and chat.jsonl, plus the captions and transcripts of media training sets " +
            "as text records and as \"Repeat after me\" dialogs (transcripts twice), written to OUT/text.jsonl and OUT/chat.jsonl.");
        var outDir = new Option<DirectoryInfo>("--out", "-o") { Description = "Output folder.", Required = true };
        var text = new Option<DirectoryInfo>("--text") { Description = "A `make-data text` folder.", Required = true };
        var images = new Option<FileInfo?>("--images") { Description = "Image training manifest (captions)." };
        var videos = new Option<FileInfo?>("--videos") { Description = "Video training manifest (captions)." };
        var speech = new Option<FileInfo?>("--speech") { Description = "Speech training manifest (transcripts)." };
        var cap = new Option<int>("--cap") { Description = "At most this many records of each set.", DefaultValueFactory = _ => 4000 };
        foreach (var o in new Option[] { outDir, text, images, videos, speech, cap }) cmd.Options.Add(o);
        cmd.SetAction(r => Guard(() =>
        {
            var (t, c) = DemoManifests.Corpus(r.GetValue(outDir)!.FullName, r.GetValue(text)!.FullName, r.GetValue(images)?.FullName, r.GetValue(videos)?.FullName,
                r.GetValue(speech)?.FullName, r.GetValue(cap));
            Console.WriteLine(t); Console.WriteLine(c);
            return 0;
        }));
        return cmd;
    }

    static Command ConcatCommand()
    {
        var cmd = new Command("concat", "Joins JSONL manifests into one, media paths (image, video, audio, a dialogue's images) made relative to the output's folder.");
        var outFile = new Option<FileInfo>("--out", "-o") { Description = "Output manifest.", Required = true };
        var inputs = new Argument<string[]>("manifests") { Description = "Input manifests in order; MANIFEST:N takes its first N records, MANIFEST:A-B records A to B − 1.", Arity = ArgumentArity.OneOrMore };
        var shuffle = new Option<int?>("--shuffle") { Description = "Shuffle the joined records with this seed." };
        cmd.Options.Add(outFile); cmd.Options.Add(shuffle); cmd.Arguments.Add(inputs);
        cmd.SetAction(r => Guard(() =>
        {
            var list = r.GetValue(inputs)!.Select(DemoManifests.ManifestSlice.Parse).ToList();
            int count = DemoManifests.Concat(r.GetValue(outFile)!.FullName, list, r.GetValue(shuffle));
            Console.WriteLine($"wrote {count} records to {r.GetValue(outFile)!.FullName}.");
            return 0;
        }));
        return cmd;
    }

    static Command ReproduceCommand()
    {
        var cmd = new Command("reproduce", "Runs a reproduction plan (demo/plan.json: the commands that made the shipped demo models) step by step into OUT; " +
            "finished steps are skipped, a stopped training step resumes from its newest checkpoint; the plan's models end up in OUT/models.");
        var plan = new Argument<FileInfo>("plan") { Description = "Plan file (e.g. demo/plan.json)." };
        var outDir = new Option<DirectoryInfo>("--out", "-o") { Description = "Output folder (one subfolder per step).", DefaultValueFactory = _ => new DirectoryInfo("runs/reproduce") };
        var from = new Option<string?>("--from") { Description = "Run from this step on (the earlier ones must be done)." };
        var only = new Option<string?>("--only") { Description = "Run only this step (its inputs must be done)." };
        var dry = new Option<bool>("--dry-run") { Description = "Print every command and the summed recorded wall time; run nothing." };
        var scale = new Option<double>("--scale") { Description = "Multiply step counts and data sizes by F (0 < F ≤ 1; at least 1 each): the same plan, scaled down.", DefaultValueFactory = _ => 1.0 };
        var threads = new Option<int?>("--threads") { Description = "libtorch threads of the training steps (default: the plan's)." };
        cmd.Arguments.Add(plan);
        foreach (var o in new Option[] { outDir, from, only, dry, scale, threads }) cmd.Options.Add(o);
        cmd.SetAction((ParseResult r, CancellationToken ct) => Task.FromResult(Guard(() =>
        {
            var p = DemoPlan.Load(r.GetValue(plan)!.FullName);
            var problems = p.Validate();
            if (problems.Count > 0)
            {
                foreach (var problem in problems) Console.Error.WriteLine($"error: {problem}");
                return 2;
            }
            var runner = new PlanRunner(p, r.GetValue(outDir)!.FullName, new PlanRunOptions
            {
                From = r.GetValue(from), Only = r.GetValue(only), DryRun = r.GetValue(dry), Scale = r.GetValue(scale), Threads = r.GetValue(threads),
            }, Execute, Console.Out);
            return runner.Run();
        })));
        return cmd;
    }

    /// <summary>Runs one plan command in this process (mm-demo or mm-train), its console output going to <paramref name="log"/>.</summary>
    internal static int Execute(string tool, IReadOnlyList<string> args, TextWriter log)
    {
        var (o, e) = (Console.Out, Console.Error);
        Console.SetOut(log); Console.SetError(log);
        try
        {
            return tool switch
            {
                "mm-demo" => Main(args.ToArray()),
                "mm-train" => Tools.MmTrain.Program.Main(args.ToArray()),
                "mm" => Tools.Mm.MmCli.Run(args.ToArray(), log, log),
                _ => throw new ConfigException($"tool '{tool}': expected one of {string.Join(", ", DemoPlan.Tools)}."),
            };
        }
        finally { log.Flush(); Console.SetOut(o); Console.SetError(e); }
    }

    static Command TrainCommand()
    {
        var cmd = new Command("train", "Runs one training config (its \"recipe\" names the recipe) with the demo's auxiliary losses registered " +
            $"(vision.auxiliary_losses: {string.Join(", ", AuxiliaryLossRegistry.Names)}). Otherwise the same as `mm-train RECIPE`.");
        var config = new Option<FileInfo>("--config", "-c") { Description = "JSON config; paths in it are relative to its folder.", Required = true };
        var set = new Option<string[]>("--set") { Description = "Override a config key (repeatable), e.g. --set optim.lr=3e-4." };
        var outDir = new Option<DirectoryInfo>("--out", "-o") { Description = "Output folder (config.json, metrics.jsonl, checkpoints/).", Required = true };
        var resume = new Option<bool>("--resume") { Description = "Continue exactly from the newest checkpoint in OUT/checkpoints." };
        var threads = new Option<int?>("--threads") { Description = "CPU threads for libtorch." };
        foreach (var o in new Option[] { config, set, outDir, resume, threads }) cmd.Options.Add(o);
        cmd.SetAction((ParseResult r, CancellationToken ct) => Task.FromResult(Guard(() =>
        {
            if (r.GetValue(threads) is int nt) TorchSharp.torch.set_num_threads(Math.Max(1, nt));
            var res = DemoTraining.Run(r.GetValue(config)!.FullName, r.GetValue(set) ?? Array.Empty<string>(), r.GetValue(outDir)!.FullName, r.GetValue(resume), ct);
            Console.WriteLine($"done: {res.Steps} steps; last checkpoint {res.LastCheckpoint ?? "(none)"}.");
            return 0;
        })));
        return cmd;
    }

    static Command EvalCommand()
    {
        var cmd = new Command("eval", "The demo's held-out evaluation with its grammars' scorers, and its probes; prints JSON.");
        foreach (var task in new[] { "caption", "asr", "video" })
        {
            var sub = new Command(task, task switch
            {
                "caption" => "Caption exact match, per-attribute accuracy and exact match per scene kind of a vision model on an image+caption manifest.",
                "asr" => "Word error rate (English normalisation) of a speech-stage2 model on an audio+transcript manifest.",
                _ => "Temporal-caption accuracy, reversed rate and per-part accuracy of a video model on a video+caption manifest.",
            });
            var model = new Option<DirectoryInfo>("--model") { Description = "Model folder.", Required = true };
            var data = new Option<FileInfo>("--data") { Description = "JSONL manifest to score on.", Required = true };
            var limit = new Option<int?>("--limit") { Description = "Score only the first N records." };
            var examples = new Option<int>("--examples") { Description = "Reference/prediction pairs to list (-1: every record).", DefaultValueFactory = _ => MultimodalEval.DefaultExamples };
            var beams = new Option<int>("--num-beams") { Description = "Beam search width (1: greedy).", DefaultValueFactory = _ => 1 };
            foreach (var o in new Option[] { model, data, limit, examples, beams }) sub.Options.Add(o);
            string t = task;
            sub.SetAction(r => Guard(() =>
            {
                string m = r.GetValue(model)!.FullName, d = r.GetValue(data)!.FullName;
                var res = t switch
                {
                    "caption" => DemoEval.Caption(m, d, r.GetValue(limit), examples: r.GetValue(examples), numBeams: r.GetValue(beams)),
                    "asr" => MultimodalEval.Asr(m, d, r.GetValue(limit), examples: r.GetValue(examples), numBeams: r.GetValue(beams)),
                    _ => DemoEval.Video(m, d, r.GetValue(limit), examples: r.GetValue(examples), numBeams: r.GetValue(beams)),
                };
                Console.WriteLine(res.ToJsonString(Indented));
                return 0;
            }));
            cmd.Subcommands.Add(sub);
        }
        cmd.Subcommands.Add(Probe("video-probe", "Linear read-out of motion directions from a video model's frame features and aggregator output, on a video+caption manifest of the demo grammar (where does the model lose motion?).",
            DemoEval.VideoDirectionProbe));
        cmd.Subcommands.Add(Probe("number-probe", "Linear read-out of the tens and ones digit of printed two-digit numbers from a vision model's patch embeddings and cross-attention source, next to its own captions (where does the model lose the digits' order?).",
            (m, d, l) => DemoEval.NumberProbe(m, d, l)));
        cmd.Subcommands.Add(DialogueCommand());
        cmd.Subcommands.Add(RepeatCommand());
        return cmd;
    }

    static Command ExtractLmCommand()
    {
        var cmd = new Command("extract-lm", "Writes the text decoder inside a vision model (its self-attention layers, embedding without the image rows, final norm) " +
            "as a text model folder with the vision model's tokenizer: the base that `sft` instruction-tunes for `vision-sft`.");
        var model = new Option<DirectoryInfo>("--model") { Description = "Vision model folder.", Required = true };
        var outDir = new Option<DirectoryInfo>("--out", "-o") { Description = "Output folder.", Required = true };
        cmd.Options.Add(model);
        cmd.Options.Add(outDir);
        cmd.SetAction(r => Guard(() =>
        {
            var layers = DecoderExtraction.Extract(r.GetValue(model)!.FullName, r.GetValue(outDir)!.FullName);
            Console.WriteLine($"{r.GetValue(outDir)!.FullName}: decoder layers {string.Join(", ", layers)} of the vision model.");
            return 0;
        }));
        return cmd;
    }

    static Command DialogueCommand()
    {
        var cmd = new Command("dialogue", "Per-question-type accuracy of an instruction-following vision model on a dialogue manifest of `make-data dialogues` " +
            "(every assistant turn answered after the reference turns before it, greedy, in the chat format); prints a table (--json: JSON).");
        var model = new Option<DirectoryInfo>("--model") { Description = "Vision model folder.", Required = true };
        var data = new Option<FileInfo>("--data") { Description = "Dialogue manifest (labels.jsonl beside it).", Required = true };
        var limit = new Option<int?>("--limit") { Description = "Score only the first N dialogues." };
        var examples = new Option<int>("--examples") { Description = "Wrong answers to list (-1: every answer).", DefaultValueFactory = _ => 8 };
        var json = new Option<bool>("--json") { Description = "Print the full JSON instead of the table." };
        foreach (var o in new Option[] { model, data, limit, examples, json }) cmd.Options.Add(o);
        cmd.SetAction(r => Guard(() =>
        {
            var res = DialogueEval.Dialogue(r.GetValue(model)!.FullName, r.GetValue(data)!.FullName, r.GetValue(limit), r.GetValue(examples));
            if (r.GetValue(json)) { Console.WriteLine(res.ToJsonString(Indented)); return 0; }
            // Listed answers first (the caption tables' layout: ✓ when right, else the reference), then the scores per type.
            var list = (res["wrong"] ?? res["answers"])!.AsArray().Select(e => e!.AsObject()).ToList();
            if (list.Count > 0)
            {
                int wi = Math.Max(5, list.Max(e => ((string)e["image"]!).Length)), wq = list.Max(e => ((string)e["question"]!).Length),
                    wp = Math.Max(10, list.Max(e => ((string)e["prediction"]!).Length));
                Console.WriteLine($"  {"input".PadRight(wi)}  {"question".PadRight(wq)}  {"answer".PadRight(wp)}  reference");
                foreach (var e in list)
                {
                    bool ok = (bool)e["correct"]!;
                    Console.WriteLine($"{(ok ? "✓" : "✗")} {((string)e["image"]!).PadRight(wi)}  {((string)e["question"]!).PadRight(wq)}  {((string)e["prediction"]!).PadRight(wp)}  {(ok ? "(same)" : (string)e["reference"]!)}");
                }
            }
            var per = res["per_type"]!.AsObject().Select(kv => $"{kv.Key} {(int)kv.Value!["correct"]!}/{(int)kv.Value["total"]!} ({(double)kv.Value["accuracy"]! * 100:F1} %)");
            Console.WriteLine($"scores: {(int)res["turns"]!} answers · {(double)res["accuracy"]! * 100:F1} % right · {string.Join(" · ", per)}");
            return 0;
        }));
        return cmd;
    }

    static Command RepeatCommand()
    {
        var cmd = new Command("repeat", "Text-only answers of a vision model against a text decoder's on a chat manifest's user prompts (e.g. repeat-eval.jsonl): " +
            "how many are identical, and how many repeat the user's words exactly; prints JSON.");
        var model = new Option<DirectoryInfo>("--model") { Description = "Vision model folder.", Required = true };
        var text = new Option<DirectoryInfo>("--text-model") { Description = "Text model folder (its tokenizer, else the vision model's).", Required = true };
        var data = new Option<FileInfo>("--data") { Description = "Chat manifest ({\"messages\"}).", Required = true };
        var limit = new Option<int?>("--limit") { Description = "Use only the first N dialogs." };
        var examples = new Option<int>("--examples") { Description = "Differing answers to list (-1: every answer pair).", DefaultValueFactory = _ => 8 };
        foreach (var o in new Option[] { model, text, data, limit, examples }) cmd.Options.Add(o);
        cmd.SetAction(r => Guard(() =>
        {
            Console.WriteLine(DialogueEval.Repeat(r.GetValue(model)!.FullName, r.GetValue(text)!.FullName, r.GetValue(data)!.FullName, r.GetValue(limit),
                examples: r.GetValue(examples)).ToJsonString(Indented));
            return 0;
        }));
        return cmd;
    }

    static Command Probe(string name, string description, Func<string, string, int?, System.Text.Json.Nodes.JsonObject> run)
    {
        var probe = new Command(name, description);
        var model = new Option<DirectoryInfo>("--model") { Description = "Model folder.", Required = true };
        var data = new Option<FileInfo>("--data") { Description = "JSONL manifest of the demo grammar.", Required = true };
        var limit = new Option<int?>("--limit") { Description = "Use only the first N records." };
        foreach (var o in new Option[] { model, data, limit }) probe.Options.Add(o);
        probe.SetAction(r => Guard(() =>
        {
            Console.WriteLine(run(r.GetValue(model)!.FullName, r.GetValue(data)!.FullName, r.GetValue(limit)).ToJsonString(Indented));
            return 0;
        }));
        return probe;
    }

    static int Guard(Func<int> body)
    {
        try { return body(); }
        catch (Exception e) when (e is ConfigException or DataFormatException or CheckpointFormatException or TokenizerFormatException
            or SyntheticDataException or MediaDecodeException or IOException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
    }
}

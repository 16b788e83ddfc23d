using System.CommandLine;
using System.Globalization;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Training;

namespace Llama3.Multimodal.Tools.MmTrain;

/// <summary>Entry point of <c>mm-train</c>: argument parsing and printing only; behaviour lives in Llama3.Multimodal.Training.</summary>
public static class Program
{
    /// <summary>Runs the command line.</summary>
    public static int Main(string[] args)
    {
        CpuRuntime.Configure();
        CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
        var root = new RootCommand("mm-train: staged training recipes of the multimodal Llama 3 family.\n" +
            "Run `mm-train <recipe> --help` for a recipe's options and defaults; `mm-train eval <caption|asr|video>` scores a trained model on a " +
            "held-out manifest; `mm-train bpe` trains a small BPE vocabulary; " +
            "`mm-train import <librispeech|common-voice|coco> SRC --out DIR` turns a standard corpus into a manifest or shards.");
        foreach (var name in RecipeRegistry.Names) root.Subcommands.Add(RecipeCommand(name));
        root.Subcommands.Add(AverageCommand());
        root.Subcommands.Add(GrowVisionCommand());
        root.Subcommands.Add(RejectionSampleCommand());
        root.Subcommands.Add(BpeCommand());
        root.Subcommands.Add(EvalCommand());
        root.Subcommands.Add(ImportCommand());
        return root.Parse(args).Invoke();
    }

    static string Defaults(TrainConfig c) =>
        $"Defaults: lr {c.Optim.Lr:G3} ({c.Optim.Schedule}, warm-up {c.Optim.WarmupSteps}, {c.Optim.TotalSteps} steps, floor {c.Optim.MinLr:G3}), " +
        $"AdamW β=({c.Optim.Beta1}, {c.Optim.Beta2}) wd {c.Optim.WeightDecay}, clip {c.Optim.GradClip}, " +
        $"global batch {c.Batch.Global} {c.Batch.Unit}, seq {c.Data.SeqLen}" +
        (c.Batch.Ramp.Count > 0 ? ", ramp " + string.Join(" → ", c.Batch.Ramp.Select(r => $"{r.Global} at {r.SeqLen} after {r.AfterTokens} tokens")) : "") +
        (c.Recipe is "dpo" or "vision-dpo" ? $", β {c.Loss.DpoBeta}, NLL weight {c.Loss.NllWeight}" : "") +
        (c.Loss.ReferenceUpdateEvery > 0 ? $", reference ← {c.Loss.ReferenceEma}·reference + {1 - c.Loss.ReferenceEma:G3}·policy every {c.Loss.ReferenceUpdateEvery} steps" : "") +
        (c.Vision?.LanguageModelFrom is { } lm ? $", language model swapped from {lm}" : "") +
        (c.Vision is { } v ? $", preset {v.Preset}, ≤ {v.MaxTiles} tiles per image" : "") +
        (c.Video is { } vd ? $", preset {vd.Preset}, {vd.NumFrames} frames merged {vd.FramesPerGroup} → 1" : "") +
        (c.Speech is { BestRq: { } b } sp ? $", preset {sp.Preset}, masks p {b.MaskProbability} × span {b.MaskSpan}, {b.Codebooks} codebooks × {b.CodebookSize}" : "") +
        (c.Speech is { Finetune: { } f } sf ? $", preset {sf.Preset}, encoder from {f.EncoderFrom}" : "") + ".";

    static Command RecipeCommand(string name)
    {
        using var recipe = RecipeRegistry.Create(name);
        var defaults = recipe.DefaultConfig();
        var cmd = new Command(name, recipe.Description + "\n" + Defaults(defaults));
        string keys = "Config keys: seed, tokenizer, model.{preset,init_from,hidden_size,num_layers,num_heads,num_kv_heads,intermediate_size,max_position_embeddings,tie_word_embeddings,init_std}, " +
            "data.{train,eval,seq_len,skip_bad_records,shuffle,prefetch,readers,shuffle_buffer,workers,image_column,audio_column,video_column,text_column,prompt_column,chosen_column,rejected_column}, optim.{lr,min_lr,beta1,beta2,eps,weight_decay,grad_clip,schedule,warmup_steps,total_steps}, " +
            "batch.{unit,global,micro,ramp}, train.{max_steps,eval_every,eval_batches,save_every,keep_last,average_last,log_every,trainable,freeze,device,devices,dtype}, " +
            "loss.{dpo_beta,nll_weight,reference,dpo_use_edited,reference_ema,reference_update_every}" + (defaults.Vision is not null ? ", vision.{preset,max_tiles,num_cross_attention_layers,language_model_from,anchor_loss_weight,anchor_from,auxiliary_losses}" : "") +
            (defaults.Video is not null ? ", video.{preset,num_frames,frames_per_group,aggregator_merge,aggregator_place_code,video_from_image_layers,video_layers_before,frame_cache_mb,vision_from}" : "") +
            (defaults.Speech is not null ? ", speech.{preset,max_audio_frames}" : "") +
            (defaults.Speech?.BestRq is not null ? ", speech.best_rq.{mask_probability,mask_span,codebooks,codebook_size,stats_utterances}" : "") +
            (defaults.Speech?.Finetune is not null ? ", speech.finetune.{encoder_from,language,spec_augment,speed_perturb}" : "") + ".";
        var config = new Option<FileInfo?>("--config", "-c") { Description = "JSON config (// comments allowed) over the recipe defaults; paths in it are relative to its folder." };
        var set = new Option<string[]>("--set") { Description = "Override a config key (repeatable), e.g. --set optim.lr=3e-4 --set train.freeze=[\"embed_tokens\"]. " + keys, AllowMultipleArgumentsPerToken = false };
        var outDir = new Option<DirectoryInfo?>("--out", "-o") { Description = "Output folder: config.json, metrics.jsonl, tensorboard/, curves.png, checkpoints/ (required unless --print-config)." };
        var resume = new Option<bool>("--resume") { Description = "Continue exactly from the newest checkpoint in OUT/checkpoints." };
        var maxSteps = new Option<long?>("--max-steps") { Description = "Stop after N optimizer steps (the schedule still spans optim.total_steps)." };
        var device = new Option<string?>("--device") { Description = "cpu or cuda (default: train.device, cpu)." };
        var dtype = new Option<string?>("--dtype") { Description = "f32 (default: train.dtype, f32)." };
        var devices = new Option<string?>("--devices") { Description = "Text recipes: split the decoder's layers over several devices in this process, e.g. cuda:0,cuda:1 (equal ranges) or auto (every CUDA device, by free memory); sets train.devices." };
        var skipBad = new Option<bool>("--skip-bad-records") { Description = "Skip and count malformed manifest records instead of stopping at the first." };
        var print = new Option<bool>("--print-config") { Description = "Print the resolved config as JSON and exit." };
        var zero1 = new Option<bool>("--zero1") { Description = "With several MPI ranks: shard the AdamW moments over the ranks (ZeRO stage 1)." };
        var threads = new Option<int?>("--threads") { Description = "CPU threads for libtorch (default: libtorch's choice; 1 is faster on a busy shared CPU)." };
        var collectives = new Option<string?>("--collectives") { Description = "With several MPI ranks: the engine for gradient all-reduce and broadcasts. auto (default): NCCL for a CUDA device when libnccl loads, else MPI; mpi: always MPI (CUDA tensors staged through host memory); nccl: NCCL or fail." };
        collectives.AcceptOnlyFromAmong("auto", "mpi", "nccl");
        foreach (var o in new Option[] { config, set, outDir, resume, maxSteps, device, dtype, devices, skipBad, print, threads, zero1, collectives }) cmd.Options.Add(o);
        cmd.SetAction((ParseResult r, CancellationToken ct) => Task.FromResult(Guard(() =>
        {
            var sets = (r.GetValue(set) ?? Array.Empty<string>()).ToList();
            if (r.GetValue(maxSteps) is long n) sets.Add($"train.max_steps={n}");
            if (r.GetValue(device) is { } d) sets.Add($"train.device=\"{d}\"");
            if (r.GetValue(dtype) is { } t) sets.Add($"train.dtype=\"{t}\"");
            if (r.GetValue(devices) is { } dl) sets.Add($"train.devices=\"{dl}\"");
            if (r.GetValue(skipBad)) sets.Add("data.skip_bad_records=true");
            using var rec = RecipeRegistry.Create(name);
            var cfg = ConfigLoader.Load(rec.DefaultConfig(), r.GetValue(config)?.FullName, sets);
            if (r.GetValue(print)) { Console.WriteLine(ConfigLoader.ToJson(cfg)); return 0; }
            if (r.GetValue(outDir) is not { } od) { Console.Error.WriteLine("error: --out DIR is required."); return 2; }
            if (r.GetValue(threads) is int nt) TorchSharp.torch.set_num_threads(Math.Max(1, nt));
            // Under mpirun/srun: one rank per process, data-parallel (see README, "Training on several processes").
            using var coll = Llama3.Multimodal.Training.Distributed.Collectives.FromEnvironment();
            if (coll.WorldSize > 1 && cfg.Train.Device.StartsWith("cuda", StringComparison.Ordinal) && !cfg.Train.Device.Contains(':'))
                cfg = cfg with { Train = cfg.Train with { Device = $"cuda:{coll.LocalRank}" } };
            int rank = coll.Rank;
            using var engine = Llama3.Multimodal.Training.Distributed.Collectives.ForDevice(coll, cfg.Train.Device, r.GetValue(collectives) ?? "auto",
                why => { if (rank == 0) Console.Error.WriteLine("note: " + why); });
            if (engine.Rank == 0) Console.Error.WriteLine($"mm-train {name}: {DeviceSpec.Backend()}; {engine.Name}, {engine.WorldSize} rank(s)");
            using var trainer = new Trainer(RecipeRegistry.Create(name), cfg, od.FullName, new TrainerOptions
            {
                Collectives = engine, ShardOptimizerState = r.GetValue(zero1),
                // A live bar on an interactive console, plain lines when the output is redirected.
                Progress = Console.IsOutputRedirected ? new TextTrainingProgress(Console.Out) : new ProgressBar(),
            });
            var res = trainer.Run(r.GetValue(resume), ct);
            if (engine.Rank == 0) Console.WriteLine($"done: {res.Steps} steps, {res.TokensSeen} tokens; last checkpoint {res.LastCheckpoint ?? "(none)"}.");
            return 0;
        })));
        return cmd;
    }

    static Command AverageCommand()
    {
        var cmd = new Command("average", "Uniform average of K checkpoints (Llama 3 averages the annealing checkpoints and each post-training stage).");
        var outDir = new Option<DirectoryInfo>("--out", "-o") { Description = "Folder for the averaged model.safetensors (+ config.json of the first).", Required = true };
        var ckpts = new Argument<DirectoryInfo[]>("checkpoints") { Description = "Checkpoint folders (same keys and shapes).", Arity = ArgumentArity.OneOrMore };
        cmd.Options.Add(outDir); cmd.Arguments.Add(ckpts);
        cmd.SetAction(r => Guard(() =>
        {
            var dirs = r.GetValue(ckpts)!.Select(d => d.FullName).ToList();
            CheckpointAverager.Average(dirs, r.GetValue(outDir)!.FullName);
            Console.WriteLine($"averaged {dirs.Count} checkpoints into {r.GetValue(outDir)!.FullName}.");
            return 0;
        }));
        return cmd;
    }

    static Command GrowVisionCommand()
    {
        var cmd = new Command("grow-vision", "Enlarge a trained vision model's image encoder without changing what it computes (channels copied, readers divided; " +
            "new local layers with zero output projections, new global and decoder cross-attention layers with zero gates), so that vision-stage1/2 can continue it with more capacity via model.init_from.");
        var model = new Option<DirectoryInfo>("--model") { Description = "Vision model folder (config.json + safetensors, e.g. OUT/checkpoints/step-N).", Required = true };
        var outDir = new Option<DirectoryInfo>("--out", "-o") { Description = "Folder for the grown model (must not exist or be empty).", Required = true };
        var width = new Option<int>("--width-factor") { Description = "Encoder width multiplier (hidden size and heads; per-head width stays).", DefaultValueFactory = _ => 1 };
        var mlp = new Option<int>("--mlp-factor") { Description = "Extra MLP hidden-size multiplier on top of the width.", DefaultValueFactory = _ => 1 };
        var global = new Option<int>("--add-global-layers") { Description = "Gated global layers to append (gates at zero).", DefaultValueFactory = _ => 0 };
        var local = new Option<int>("--add-local-layers") { Description = "Local (ungated) encoder layers to append after the existing ones (zero output projections: the identity).", DefaultValueFactory = _ => 0 };
        var cross = new Option<int>("--add-cross-attention-layers") { Description = "Gated cross-attention layers to append at the end of the decoder (gates at zero).", DefaultValueFactory = _ => 0 };
        var noise = new Option<double>("--noise") { Description = "Relative noise on the widened weights so that copies can diverge (0: exactly the same function).", DefaultValueFactory = _ => 0.01 };
        var seed = new Option<long>("--seed") { Description = "Seed of the new layers and the noise.", DefaultValueFactory = _ => 1 };
        var open = new Option<double>("--open-gates") { Description = "Open every gated branch (global layers, cross-attention) whose |tanh(gate)| is below this (e.g. 0.5) to it, " +
            "its output projection scaled so that the model computes the same; shut gates get almost no gradient. 0: leave the gates.", DefaultValueFactory = _ => 0 };
        foreach (var o in new Option[] { model, outDir, width, mlp, global, local, cross, noise, seed, open }) cmd.Options.Add(o);
        cmd.SetAction(r => Guard(() =>
        {
            var opts = new VisionGrowthOptions
            {
                WidthFactor = r.GetValue(width), MlpFactor = r.GetValue(mlp), AddGlobalLayers = r.GetValue(global), AddLocalLayers = r.GetValue(local), AddCrossAttentionLayers = r.GetValue(cross), Noise = r.GetValue(noise), Seed = r.GetValue(seed), OpenGates = r.GetValue(open),
            };
            var (before, after) = VisionGrowthTool.Run(r.GetValue(model)!.FullName, r.GetValue(outDir)!.FullName, opts);
            Console.WriteLine($"grown image encoder: {before:N0} → {after:N0} parameters, written to {r.GetValue(outDir)!.FullName}.");
            return 0;
        }));
        return cmd;
    }

    static Command RejectionSampleCommand()
    {
        var cmd = new Command("rejection-sample", "Rejection sampling: K responses per prompt from the policy, scored by a reward model; the best of each is written as an SFT dialog manifest. " +
            "With an image policy (a vision-sft/vision-dpo folder) and a vision-reward model, prompts carry images and the output is a vision-sft manifest.");
        var policy = new Option<DirectoryInfo>("--policy") { Description = "Policy checkpoint folder (HF layout, e.g. OUT/checkpoints/step-N of sft; or of vision-sft/vision-dpo for images).", Required = true };
        var reward = new Option<DirectoryInfo>("--reward") { Description = "Reward-model checkpoint folder (from the reward-model recipe; vision-reward for an image policy).", Required = true };
        var prompts = new Option<FileInfo>("--prompts") { Description = "JSONL with a \"prompt\" per line (string or message list); for an image policy also \"images\" (paths relative to the file).", Required = true };
        var outFile = new Option<FileInfo>("--out", "-o") { Description = "Output dialog manifest (JSONL) for the sft recipe (vision-sft for images: {\"images\", \"messages\", \"reward\"}).", Required = true };
        var k = new Option<int>("--k") { Description = "Samples per prompt (Llama 3: 10–30).", DefaultValueFactory = _ => 10 };
        var temp = new Option<double>("--temperature") { Description = "Sampling temperature.", DefaultValueFactory = _ => 0.8 };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Longest response in tokens.", DefaultValueFactory = _ => 256 };
        var seed = new Option<long>("--seed") { Description = "Sampling seed (prompt i uses seed + i).", DefaultValueFactory = _ => 1234 };
        var tok = new Option<string?>("--tokenizer") { Description = "llama3, bytes, or a tokenizer.model path (default: llama3; for an image policy, the one its train_info.json names)." };
        var skipBad = new Option<bool>("--skip-bad-records") { Description = "Skip and count malformed prompt records." };
        foreach (var o in new Option[] { policy, reward, prompts, outFile, k, temp, maxNew, seed, tok, skipBad }) cmd.Options.Add(o);
        cmd.SetAction(r => Guard(() =>
        {
            string policyDir = r.GetValue(policy)!.FullName;
            string policyConfig = Path.Combine(policyDir, "config.json");
            if (File.Exists(policyConfig) && File.ReadAllText(policyConfig).Contains("\"vision_config\"", StringComparison.Ordinal))
            {
                using var vp = Llama3.Multimodal.Vision.VisionLanguageModel.FromPretrained(policyDir);
                using var vrm = VisionRewardModel.FromPretrained(r.GetValue(reward)!.FullName);
                bool info = File.Exists(Path.Combine(policyDir, MediaTokens.InfoFile));
                var vtok = r.GetValue(tok) is { } t ? Llama3TrainingTokenizer.Resolve(t) : info ? MediaTokens.ReadInfo(policyDir).Tokenizer : Llama3TrainingTokenizer.Resolve("llama3");
                var vs = new VisionRejectionSampler(vp, vrm, vtok, info ? MediaTokens.ReadInfo(policyDir).MaxTiles : 4);
                int vn = vs.Run(r.GetValue(prompts)!.FullName, r.GetValue(outFile)!.FullName, r.GetValue(k), r.GetValue(temp), r.GetValue(maxNew), r.GetValue(seed), r.GetValue(skipBad));
                Console.WriteLine($"wrote {vn} image dialogues to {r.GetValue(outFile)!.FullName}.");
                return 0;
            }
            using var p = LlamaForCausalLM.FromPretrained(policyDir);
            using var rm = RewardModel.FromPretrained(r.GetValue(reward)!.FullName);
            var sampler = new RejectionSampler(p, rm, Llama3TrainingTokenizer.Resolve(r.GetValue(tok) ?? "llama3"));
            int n = sampler.Run(r.GetValue(prompts)!.FullName, r.GetValue(outFile)!.FullName, r.GetValue(k), r.GetValue(temp), r.GetValue(maxNew), r.GetValue(seed), r.GetValue(skipBad));
            Console.WriteLine($"wrote {n} dialogs to {r.GetValue(outFile)!.FullName}.");
            return 0;
        }));
        return cmd;
    }

    static Command BpeCommand()
    {
        var cmd = new Command("bpe", "Train a small byte-level BPE vocabulary (tiktoken ranks file, usable as `tokenizer` in any config) on manifests' texts, captions and messages.");
        var outFile = new Option<FileInfo>("--out", "-o") { Description = "Ranks file to write (e.g. DIR/tokenizer.model).", Required = true };
        var vocab = new Option<int>("--vocab-size") { Description = "Ranks including the 256 bytes.", DefaultValueFactory = _ => 1024 };
        var corpus = new Argument<FileInfo[]>("corpus") { Description = "JSONL manifests or text files.", Arity = ArgumentArity.OneOrMore };
        cmd.Options.Add(outFile); cmd.Options.Add(vocab); cmd.Arguments.Add(corpus);
        cmd.SetAction(r => Guard(() =>
        {
            var texts = r.GetValue(corpus)!.SelectMany(f => BpeTrainer.ReadTexts(f.FullName)).ToList();
            var tokens = BpeTrainer.TrainToFile(texts, r.GetValue(vocab), r.GetValue(outFile)!.FullName);
            Console.WriteLine($"wrote {tokens.Count} ranks to {r.GetValue(outFile)!.FullName}.");
            return 0;
        }));
        return cmd;
    }

    static Command ImportCommand()
    {
        var cmd = new Command("import", "Write a manifest (or WebDataset tar shards) for the speech and caption recipes from a standard corpus in its published layout.");
        foreach (var corpus in CorpusImporter.Corpora)
        {
            var sub = new Command(corpus, corpus switch
            {
                "librispeech" => "LibriSpeech: SRC holds SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac with SPEAKER-CHAPTER.trans.txt (e.g. LibriSpeech/train-clean-100). " +
                    "Records: {\"audio\", \"text\", \"language\": \"English\", \"task\": \"asr\"} for speech-stage1/2.",
                "common-voice" => "Common Voice: SRC is a language folder with clips/*.mp3 and train.tsv, dev.tsv, test.tsv, validated.tsv (columns client_id, path, sentence, …, locale). " +
                    "Records: {\"audio\", \"text\", \"language\" (from the locale), \"task\": \"asr\"}.",
                _ => "COCO captions: SRC holds annotations/captions_SPLIT.json and the SPLIT/ image folder. Records: {\"image\", \"caption\"} (one per caption) for vision-stage1/2.",
            });
            var src = new Argument<DirectoryInfo>("SRC") { Description = "The corpus folder." };
            var outDir = new Option<DirectoryInfo>("--out", "-o") { Description = "Output folder: manifest.jsonl (media named by paths relative to it), or shard-NNNNNN.tar with --shards.", Required = true };
            var shards = new Option<bool>("--shards") { Description = "Write WebDataset tar shards (KEY.flac/jpg + KEY.txt [+ KEY.json with language and task]) holding the media bytes." };
            var shardSize = new Option<int>("--shard-size") { Description = "Samples per shard.", DefaultValueFactory = _ => 1000 };
            var limit = new Option<int?>("--limit") { Description = "Only the first N records." };
            var split = new Option<string?>("--split") { Description = corpus == "coco" ? "Split (default train2017)." : "The TSV to read (default train; also dev, test, validated, …)." };
            var language = new Option<string?>("--language") { Description = "Language name written into each record (default: English for LibriSpeech, the locale's name for Common Voice)." };
            var first = new Option<bool>("--first-caption-only") { Description = "One record per image (its first caption) instead of one per caption." };
            sub.Arguments.Add(src);
            foreach (var o in new Option[] { outDir, shards, shardSize, limit }) sub.Options.Add(o);
            if (corpus != "librispeech") sub.Options.Add(split);
            if (corpus != "coco") sub.Options.Add(language);
            if (corpus == "coco") sub.Options.Add(first);
            sub.SetAction(r => Guard(() =>
            {
                var res = CorpusImporter.Import(corpus, r.GetValue(src)!.FullName, r.GetValue(outDir)!.FullName, new ImportOptions
                {
                    Shards = r.GetValue(shards), ShardSize = r.GetValue(shardSize), Limit = r.GetValue(limit), Split = r.GetValue(split),
                    Language = r.GetValue(language), FirstCaptionOnly = r.GetValue(first),
                });
                Console.WriteLine($"imported {res.Records} records into {(res.Outputs.Count == 1 ? res.Outputs[0] : $"{res.Outputs.Count} shards in {r.GetValue(outDir)!.FullName}")}" +
                    (res.Skipped > 0 ? $"; skipped {res.Skipped}:" : "."));
                foreach (var n in res.Notes) Console.WriteLine("  " + n);
                return 0;
            }));
            cmd.Subcommands.Add(sub);
        }
        return cmd;
    }

    static Command EvalCommand()
    {
        var cmd = new Command("eval", "Held-out evaluation of a model folder written by a multimodal recipe; prints JSON scores (--table: a table).");
        foreach (var task in new[] { "caption", "asr", "video" })
        {
            var sub = new Command(task, task switch
            {
                "caption" => "Caption exact match (case, spacing and a final period ignored) of a vision-stage1/2 model on image+caption data.",
                "asr" => "Word error rate (Whisper-style English normalisation) of a speech-stage2 model on audio+transcript data.",
                _ => "Caption exact match (case, spacing and a final period ignored) of a video model on video+caption data.",
            });
            var model = new Option<DirectoryInfo>("--model") { Description = "Model folder (e.g. OUT/checkpoints/step-N).", Required = true };
            var data = new Option<string>("--data") { Description = "JSONL manifest, tar shard(s) (a file, a folder or a brace pattern such as shard-{000000..000009}.tar) or Parquet file(s) to score on (shards in stored order).", Required = true };
            string media = task switch { "caption" => "image", "asr" => "audio", _ => "video" };
            var mediaColumn = new Option<string?>($"--{media}-column") { Description = $"Shards and Parquet: the {media} member or column, as data.{media}_column (default: the usual names)." };
            var textColumn = new Option<string?>("--text-column") { Description = "Shards and Parquet: the reference text member or column, as data.text_column (default: the usual names)." };
            var limit = new Option<int?>("--limit") { Description = "Score only the first N records." };
            var maxNew = new Option<int>("--max-new-tokens") { Description = "Longest generated text in tokens.", DefaultValueFactory = _ => task == "asr" ? 200 : 160 };
            var examples = new Option<int>("--examples") { Description = "Reference/prediction pairs to list in the JSON (-1: every record).", DefaultValueFactory = _ => MultimodalEval.DefaultExamples };
            var beams = new Option<int>("--num-beams") { Description = "Beam search width (1: greedy).", DefaultValueFactory = _ => 1 };
            var table = new Option<bool>("--table") { Description = "Print each listed record's input, prediction and reference in a table, then the scores, instead of JSON." };
            foreach (var o in new Option[] { model, data, mediaColumn, textColumn, limit, maxNew, examples, beams, table }) sub.Options.Add(o);
            sub.SetAction(r => Guard(() =>
            {
                string m = r.GetValue(model)!.FullName, d = Path.GetFullPath(r.GetValue(data)!);
                string? mc = r.GetValue(mediaColumn);
                var columns = new DataSection
                {
                    ImageColumn = task == "caption" ? mc : null, AudioColumn = task == "asr" ? mc : null, VideoColumn = task == "video" ? mc : null,
                    TextColumn = r.GetValue(textColumn),
                };
                var res = task switch
                {
                    "caption" => MultimodalEval.Caption(m, d, r.GetValue(limit), r.GetValue(maxNew), r.GetValue(examples), r.GetValue(beams), columns),
                    "asr" => MultimodalEval.Asr(m, d, r.GetValue(limit), r.GetValue(maxNew), r.GetValue(examples), r.GetValue(beams), columns),
                    _ => MultimodalEval.Video(m, d, r.GetValue(limit), r.GetValue(maxNew), r.GetValue(examples), r.GetValue(beams), columns),
                };
                if (r.GetValue(table)) EvalTable.Write(res, Console.Out);
                else Console.WriteLine(res.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }));
            cmd.Subcommands.Add(sub);
        }
        return cmd;
    }

    static int Guard(Func<int> body)
    {
        try { return body(); }
        catch (Exception e) when (e is ConfigException or DataFormatException or CheckpointFormatException or TokenizerFormatException or Text.MediaDecodeException or IOException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
    }
}

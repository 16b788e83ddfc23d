namespace Llama3.Multimodal.Demo;

/// <summary>
/// The demo's small config per recipe, over the data of <c>mm-demo make-data</c> (byte tokenizer, tiny presets; paths
/// relative to the data folder, where <see cref="DemoData"/> writes them as <c>RECIPE.json</c>). The shipped copies live in
/// <c>demo/configs</c>.
/// </summary>
public static class DemoConfigs
{
    /// <summary>Recipes with a demo config.</summary>
    public static IReadOnlyList<string> Recipes { get; } = new[] { "text-pretrain", "sft", "dpo", "reward-model", "vision-stage1", "vision-stage2", "video", "speech-stage1", "speech-stage2", "sft-instruct", "vision-sft" };

    /// <summary>The demo config of <paramref name="recipe"/>.</summary>
    public static TrainConfig For(string recipe) => recipe switch
    {
        "text-pretrain" => new TrainConfig
        {
            Command = "mm-train text-pretrain --config configs/training/text-pretrain.json --out runs/text-pretrain",
            Recipe = "text-pretrain",
            Tokenizer = "bytes",
            Model = new ModelSection { Preset = "tiny", MaxPositionEmbeddings = 512 },
            Data = new DataSection { Train = "text.jsonl", Eval = "text-eval.jsonl", SeqLen = 128, Prefetch = 16 },
            Optim = new OptimSection { Lr = 3e-3, MinLr = 3e-4, WarmupSteps = 5, TotalSteps = 200 },
            Batch = new BatchSection { Unit = "tokens", Global = 1024, Micro = 4 },
            Train = new LoopSection { SaveEvery = 50, EvalEvery = 25, EvalBatches = 4, KeepLast = 3, LogEvery = 5 },
        },
        "sft" => new TrainConfig
        {
            Command = "mm-train sft --config configs/training/sft.json --out runs/sft",
            Recipe = "sft",
            Tokenizer = "bytes",
            Model = new ModelSection { Preset = "tiny", MaxPositionEmbeddings = 512 },
            Data = new DataSection { Train = "chat.jsonl", SeqLen = 160, Prefetch = 16 },
            Optim = new OptimSection { Lr = 2e-3, MinLr = 2e-4, WarmupSteps = 5, TotalSteps = 100 },
            Batch = new BatchSection { Unit = "samples", Global = 8, Micro = 4 },
            Train = new LoopSection { SaveEvery = 50, KeepLast = 2, LogEvery = 5 },
        },
        // The instruct decoder of the vision-instruct model: sft of the shipped vision model's own decoder (`mm-demo
        // extract-lm` writes it to instruct-base/), on the text dialogues of `make-data dialogues`, in that decoder's vocabulary.
        "sft-instruct" => new TrainConfig
        {
            Command = "mm-demo train --config sft-instruct.json --out runs/sft-instruct",
            Recipe = "sft",
            Tokenizer = "instruct-base/tokenizer.model",
            Model = new ModelSection { Preset = "tiny", InitFrom = "instruct-base" },
            Data = new DataSection { Train = "instruct-chat.jsonl", SeqLen = 128, Prefetch = 16 },
            Optim = new OptimSection { Lr = 1e-3, MinLr = 1e-4, WarmupSteps = 10, TotalSteps = 600 },
            Batch = new BatchSection { Unit = "samples", Global = 16, Micro = 16 },
            Train = new LoopSection { SaveEvery = 200, KeepLast = 1, LogEvery = 20 },
        },
        // vision-sft of the vision-instruct model: the shipped vision model (a copy or link in vision/) with its decoder
        // swapped for the instruct decoder of sft-instruct (frozen); image encoder, projector and cross-attention train.
        "vision-sft" => new TrainConfig
        {
            Command = "mm-train vision-sft --config vision-sft.json --out runs/vision-sft",
            Recipe = "vision-sft",
            Tokenizer = "instruct-base/tokenizer.model",
            Model = new ModelSection { Preset = "tiny", InitFrom = "vision" },
            Data = new DataSection { Train = "dialogues/manifest.jsonl", Eval = "dialogues-eval/manifest.jsonl", SeqLen = 192, Prefetch = 16 },
            Optim = new OptimSection { Lr = 3e-4, MinLr = 3e-5, WarmupSteps = 20, TotalSteps = 1000, Schedule = "cosine", WeightDecay = 0.01 },
            Batch = new BatchSection { Unit = "samples", Global = 8, Micro = 8 },
            Train = new LoopSection { SaveEvery = 250, KeepLast = 3, LogEvery = 10, EvalEvery = 250, EvalBatches = 4 },
            Vision = new VisionSection { Preset = "tiny-vision", MaxTiles = 4, LanguageModelFrom = "runs/sft-instruct/final" },
        },
        "dpo" => new TrainConfig
        {
            Command = "mm-train dpo --config configs/training/dpo.json --out runs/dpo",
            Recipe = "dpo",
            Tokenizer = "bytes",
            Model = new ModelSection { Preset = "tiny", MaxPositionEmbeddings = 512 },
            Data = new DataSection { Train = "pairs.jsonl", SeqLen = 160, Prefetch = 16 },
            Optim = new OptimSection { Lr = 1e-3, MinLr = 1e-3, WarmupSteps = 0, TotalSteps = 50, Schedule = "constant" },
            Batch = new BatchSection { Unit = "samples", Global = 8, Micro = 4 },
            Train = new LoopSection { SaveEvery = 25, KeepLast = 2, LogEvery = 5 },
        },
        "reward-model" => new TrainConfig
        {
            Command = "mm-train reward-model --config configs/training/reward-model.json --out runs/reward-model",
            Recipe = "reward-model",
            Tokenizer = "bytes",
            Model = new ModelSection { Preset = "tiny", MaxPositionEmbeddings = 512 },
            Data = new DataSection { Train = "pairs.jsonl", SeqLen = 160, Prefetch = 16 },
            Optim = new OptimSection { Lr = 1e-3, MinLr = 1e-4, WarmupSteps = 5, TotalSteps = 60 },
            Batch = new BatchSection { Unit = "samples", Global = 8, Micro = 4 },
            Train = new LoopSection { SaveEvery = 30, KeepLast = 2, LogEvery = 5 },
        },
        "speech-stage1" => new TrainConfig
        {
            Command = "mm-train speech-stage1 --config speech-stage1.json --out runs/speech-stage1",
            Recipe = "speech-stage1",
            Tokenizer = "bytes",
            Data = new DataSection { Train = "speech/manifest.jsonl", Eval = "speech-eval/manifest.jsonl", SeqLen = 6000, Prefetch = 16 },
            Optim = new OptimSection { Lr = 2e-3, MinLr = 2e-4, WarmupSteps = 10, TotalSteps = 300, Schedule = "cosine", WeightDecay = 0.01 },
            Batch = new BatchSection { Unit = "samples", Global = 8, Micro = 4 },
            Train = new LoopSection { SaveEvery = 100, KeepLast = 2, LogEvery = 10, EvalEvery = 100, EvalBatches = 4 },
            Speech = new SpeechSection { Preset = "tiny-speech", BestRq = new BestRqSection { Codebooks = 4, CodebookSize = 256, StatsUtterances = 512 } },
        },
        "speech-stage2" => new TrainConfig
        {
            Command = "mm-train speech-stage2 --config speech-stage2.json --out runs/speech-stage2",
            Recipe = "speech-stage2",
            Tokenizer = "bytes",
            Model = new ModelSection { Preset = "tiny", InitFrom = "runs/text-pretrain/final" },
            Data = new DataSection { Train = "speech/manifest.jsonl", Eval = "speech-eval/manifest.jsonl", SeqLen = 400, Prefetch = 16 },
            Optim = new OptimSection { Lr = 1e-3, MinLr = 1e-4, WarmupSteps = 10, TotalSteps = 400, Schedule = "cosine", WeightDecay = 0.01 },
            Batch = new BatchSection { Unit = "samples", Global = 8, Micro = 4 },
            Train = new LoopSection { SaveEvery = 100, KeepLast = 2, LogEvery = 10, EvalEvery = 100, EvalBatches = 4 },
            Speech = new SpeechSection { Preset = "tiny-speech", Finetune = new SpeechFinetuneSection { EncoderFrom = "runs/speech-stage1/final" } },
        },
        "video" => new TrainConfig
        {
            Command = "mm-train video --config video.json --out runs/video",
            Recipe = "video",
            Tokenizer = "bytes",
            Model = new ModelSection { Preset = "tiny", InitFrom = "runs/vision-stage2/final" },
            Data = new DataSection { Train = "videos/manifest.jsonl", Eval = "videos-eval/manifest.jsonl", SeqLen = 160, Prefetch = 8 },
            Optim = new OptimSection { Lr = 3e-3, MinLr = 3e-4, WarmupSteps = 10, TotalSteps = 300, Schedule = "cosine", WeightDecay = 0.01 },
            Batch = new BatchSection { Unit = "samples", Global = 4, Micro = 2 },
            Train = new LoopSection { SaveEvery = 100, KeepLast = 2, LogEvery = 10, EvalEvery = 100, EvalBatches = 4 },
            // One frame per group: the 8 aggregated frames keep their order through the group embedding; on the demo clips a
            // fresh adapter reached 25 % after 4000 steps this way against 8 % with all 8 frames in one group (demo/NOTES.md).
            Video = new VideoSection { Preset = "tiny-video", NumFrames = 8, FramesPerGroup = 1 },
        },
        "vision-stage1" => Vision("vision-stage1", lr: 3e-3, steps: 600, maxTiles: 1, initFrom: "runs/text-pretrain/final"),
        "vision-stage2" => Vision("vision-stage2", lr: 3e-4, steps: 200, maxTiles: 4, initFrom: "runs/vision-stage1/final"),
        _ => throw new ConfigException($"no demo config for recipe '{recipe}'; known: {string.Join(", ", Recipes)}."),
    };

    static TrainConfig Vision(string name, double lr, long steps, int maxTiles, string initFrom) => new()
    {
        Command = $"mm-train {name} --config {name}.json --out runs/{name}",
        Recipe = name,
        Tokenizer = "bytes",
        Model = new ModelSection { Preset = "tiny", InitFrom = initFrom },
        Data = new DataSection { Train = "images/manifest.jsonl", Eval = "images-eval/manifest.jsonl", SeqLen = 128, Prefetch = 16 },
        Optim = new OptimSection { Lr = lr, MinLr = lr / 10, WarmupSteps = Math.Min(10, steps / 10), TotalSteps = steps, Schedule = "cosine", WeightDecay = 0.01 },
        Batch = new BatchSection { Unit = "samples", Global = 8, Micro = 4 },
        Train = new LoopSection { SaveEvery = 100, KeepLast = 2, LogEvery = 10, EvalEvery = 100, EvalBatches = 4 },
        Vision = new VisionSection { Preset = "tiny-vision", MaxTiles = maxTiles },
    };
}

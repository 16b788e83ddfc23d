
namespace Llama3.Multimodal.Training.Tests.Recipes;

/// <summary>Tiny real media sets made once per test run by the demo's makers (PNG scenes, espeak-ng speech, ffmpeg clips).</summary>
internal static class MediaTestData
{
    static readonly Lazy<string> Images = new(() => ImageDataMaker.Make(new ImageMakerOptions(8, Seed: 3, Size: 64, Kinds: new[] { "single" }), Path.Combine(TestRuns.TempDir(), "images")).ManifestPath);
    static readonly Lazy<string> Speech = new(() => SpeechDataMaker.Make(new SpeechMakerOptions(6, Seed: 3, Voices: new[] { "en-us" }, Variants: new[] { "" }, Speeds: new[] { 190 }, Pitches: new[] { 50 }), Path.Combine(TestRuns.TempDir(), "speech")).ManifestPath);
    static readonly Lazy<string> Videos = new(() => VideoDataMaker.Make(new VideoMakerOptions(4, Seed: 3, Size: 64, Seconds: 2, Fps: 4), Path.Combine(TestRuns.TempDir(), "videos")).ManifestPath);

    /// <summary>Image+caption manifest.</summary>
    public static string ImageManifest => Images.Value;
    /// <summary>Audio+transcript manifest.</summary>
    public static string SpeechManifest => Speech.Value;
    /// <summary>Video+caption manifest.</summary>
    public static string VideoManifest => Videos.Value;

    /// <summary>The recipe's demo config on the tiny sets, fresh weights (no init_from), a few steps, then <paramref name="sets"/>.</summary>
    public static TrainConfig Config(string recipe, long steps, params string[] sets)
    {
        using var r = RecipeRegistry.Create(recipe);
        string manifest = recipe switch
        {
            "vision-stage1" or "vision-stage2" => ImageManifest,
            "video" => VideoManifest,
            _ => SpeechManifest,
        };
        var all = new List<string>
        {
            "model.init_from=null", $"data.train=\"{manifest}\"", $"data.eval=\"{manifest}\"",
            $"optim.total_steps={steps}", "optim.warmup_steps=1", "optim.schedule=\"constant\"", "train.log_every=1000", "train.eval_every=0",
            "train.save_every=0", "batch.micro=2", "batch.global=2", "data.prefetch=4", "data.shuffle=false",
        };
        if (recipe == "speech-stage2") all.Add("speech.finetune.encoder_from=null");
        all.AddRange(sets);
        return ConfigLoader.Load(DemoConfigs.For(recipe), null, all);
    }
}

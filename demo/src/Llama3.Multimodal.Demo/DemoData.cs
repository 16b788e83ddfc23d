using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Demo;

/// <summary>
/// The demo data sets of <c>mm-demo make-data</c>: real media made by the Synthetic makers, a training set plus an
/// evaluation set made with another seed, and a held-out set of combinations never seen in training (images: green
/// triangles and blue stars; speech: the en-029 voice and 190 wpm), with a demo config per recipe (paths relative to the folder).
/// </summary>
public static class DemoData
{
    /// <summary>Kinds accepted by <see cref="Write"/>.</summary>
    public static IReadOnlyList<string> Kinds { get; } = new[] { "images", "speech", "video", "text", "dialogues", "all" };

    /// <summary>Colour+shape combinations kept out of the image training set.</summary>
    public static IReadOnlyList<ColourShape> HeldOutShapes { get; } = new[] { new ColourShape("green", "triangle"), new ColourShape("blue", "star") };
    /// <summary>Voices kept out of the speech training set.</summary>
    public static IReadOnlyList<string> HeldOutVoices { get; } = new[] { "en-029" };
    /// <summary>Speeds kept out of the speech training set.</summary>
    public static IReadOnlyList<int> HeldOutSpeeds { get; } = new[] { 190 };

    /// <summary>
    /// Writes <paramref name="kind"/> (<c>images</c>, <c>speech</c>, <c>video</c>, <c>text</c> or <c>all</c>) into
    /// <paramref name="dir"/>: <c>{kind}/</c>, <c>{kind}-eval/</c>, <c>{kind}-heldout/</c> (images, speech), and the
    /// recipes' demo configs. <paramref name="count"/> null = the kind's default (images 2000, speech 600, video 300).
    /// <paramref name="imageKinds"/> limits the image scenes to some kinds (single, count, overlap, word, number; null =
    /// all); the held-out set is then made only if a shape kind is among them (word and number scenes have no colour+shape).
    /// <c>dialogues</c> (not part of <c>all</c>) writes <c>dialogues/</c> and <c>dialogues-eval/</c> (seed + 1; image
    /// dialogues and preference records, <see cref="DialogueDataMaker"/>), <c>instruct-chat.jsonl</c> (text dialogues
    /// for the instruct decoder's sft, at least 2000), <c>repeat-eval.jsonl</c> (seed + 1: "Repeat after me" prompts)
    /// and <c>sft-instruct.json</c>.
    /// </summary>
    public static IReadOnlyList<string> Write(string kind, string dir, int seed, int? count = null, int? evalCount = null, int imageSize = 64,
        IReadOnlyList<string>? imageKinds = null)
    {
        if (!Kinds.Contains(kind)) throw new ConfigException($"make-data kind '{kind}': expected one of {string.Join(", ", Kinds)}.");
        Directory.CreateDirectory(dir);
        var written = new List<string>();
        bool all = kind == "all";
        if (all || kind == "text")
        {
            SyntheticText.Write(dir, seed, count ?? 2000, 400, 400);
            written.Add(Path.Combine(dir, "text.jsonl"));
        }
        if (all || kind == "images")
        {
            int n = count ?? 2000, e = evalCount ?? Math.Max(16, n / 10);
            written.Add(ImageDataMaker.Make(new ImageMakerOptions(n, seed, imageSize, HeldOutShapes, HeldOutMode.Exclude, imageKinds), Path.Combine(dir, "images")).ManifestPath);
            written.Add(ImageDataMaker.Make(new ImageMakerOptions(e, seed + 1, imageSize, HeldOutShapes, HeldOutMode.Exclude, imageKinds), Path.Combine(dir, "images-eval")).ManifestPath);
            if (imageKinds is null || imageKinds.Any(k => !ShapeScenes.IsPrintKind(k)))
                written.Add(ImageDataMaker.Make(new ImageMakerOptions(e, seed + 2, imageSize, HeldOutShapes, HeldOutMode.Only, imageKinds), Path.Combine(dir, "images-heldout")).ManifestPath);
            WriteConfigs(dir, "vision-stage1", "vision-stage2");
        }
        if (all || kind == "speech")
        {
            int n = count ?? 600, e = evalCount ?? Math.Max(16, n / 10);
            written.Add(SpeechDataMaker.Make(new SpeechMakerOptions(n, seed, HeldOutVoices: HeldOutVoices, HeldOutSpeeds: HeldOutSpeeds, Mode: HeldOutMode.Exclude), Path.Combine(dir, "speech")).ManifestPath);
            written.Add(SpeechDataMaker.Make(new SpeechMakerOptions(e, seed + 1, HeldOutVoices: HeldOutVoices, HeldOutSpeeds: HeldOutSpeeds, Mode: HeldOutMode.Exclude), Path.Combine(dir, "speech-eval")).ManifestPath);
            written.Add(SpeechDataMaker.Make(new SpeechMakerOptions(e, seed + 2, HeldOutVoices: HeldOutVoices, HeldOutSpeeds: HeldOutSpeeds, Mode: HeldOutMode.Only), Path.Combine(dir, "speech-heldout")).ManifestPath);
            WriteConfigs(dir, "speech-stage1", "speech-stage2");
        }
        if (all || kind == "video")
        {
            int n = count ?? 300, e = evalCount ?? Math.Max(8, n / 10);
            written.Add(VideoDataMaker.Make(new VideoMakerOptions(n, seed, imageSize), Path.Combine(dir, "videos")).ManifestPath);
            written.Add(VideoDataMaker.Make(new VideoMakerOptions(e, seed + 1, imageSize), Path.Combine(dir, "videos-eval")).ManifestPath);
            WriteConfigs(dir, "video");
        }
        if (kind == "dialogues")
        {
            int n = count ?? 2000, e = evalCount ?? Math.Max(16, n / 10);
            written.Add(DialogueDataMaker.Make(new DialogueMakerOptions(n, seed, imageSize, HeldOutShapes, imageKinds), Path.Combine(dir, "dialogues")).ManifestPath);
            written.Add(DialogueDataMaker.Make(new DialogueMakerOptions(e, seed + 1, imageSize, HeldOutShapes, imageKinds), Path.Combine(dir, "dialogues-eval")).ManifestPath);
            string chat = Path.Combine(dir, "instruct-chat.jsonl"), repeat = Path.Combine(dir, "repeat-eval.jsonl");
            ManifestLine.WriteAll(chat, DialogueDataMaker.TextDialogues(Math.Max(n, 2000), seed));
            ManifestLine.WriteAll(repeat, DialogueDataMaker.TextDialogues(e, seed + 1, repeatOnly: true));
            written.Add(chat);
            written.Add(repeat);
            AtomicFile.WriteAllText(Path.Combine(dir, "sft-instruct.json"), ConfigLoader.ToJson(DemoConfigs.For("sft-instruct") with { Seed = seed }));
        }
        return written;
    }

    static void WriteConfigs(string dir, params string[] recipes)
    {
        foreach (var name in recipes)
        {
            AtomicFile.WriteAllText(Path.Combine(dir, name + ".json"), ConfigLoader.ToJson(DemoConfigs.For(name)));
        }
    }
}

using System.Text.Json.Nodes;
using Llama3.Multimodal.Text;
using Llama3.Multimodal.Vision;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Demo.Tests;

public class DialogueDataMakerTests
{
    [Fact]
    public void DialoguesAskWhatTheSceneAnswersByteIdenticallyForASeed()
    {
        string a = SyntheticTestFiles.NewDir("dlg-a"), b = SyntheticTestFiles.NewDir("dlg-b");
        var o = new DialogueMakerOptions(Count: 40, Seed: 21, Size: 64, HeldOut: DemoData.HeldOutShapes);
        var ma = DialogueDataMaker.Make(o, a);
        DialogueDataMaker.Make(o, b);
        foreach (var f in new[] { "manifest.jsonl", "labels.jsonl", "preferences.jsonl", "images/000007.png" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(a, f)), File.ReadAllBytes(Path.Combine(b, f)));
        // The scenes are the image maker's scenes of the same seed: the describe answer is the caption.
        var images = ImageDataMaker.Make(new ImageMakerOptions(40, 21, 64, DemoData.HeldOutShapes, HeldOutMode.Exclude), SyntheticTestFiles.NewDir("dlg-img"));
        var captions = SyntheticTestFiles.ReadJsonl(images.ManifestPath).Select(l => SyntheticTestFiles.Str(l, "caption")!).ToList();
        var labels = SyntheticTestFiles.ReadJsonl(ma.LabelsPath!);
        var turns = DialogueEval.ReadTurns(ma.ManifestPath);
        Assert.Equal(labels.Sum(l => SyntheticTestFiles.Str(l, "types")!.Split(',').Length), turns.Count);
        var seen = new HashSet<string>();
        foreach (var t in turns)
        {
            int i = int.Parse(Path.GetFileNameWithoutExtension(t.Image));
            var attrs = ImageCaptionGrammar.Parse(captions[i]);
            seen.Add(t.Type);
            // The image comes once, before the first question's text; the history alternates user / assistant.
            Assert.StartsWith("<|image|>", t.Prompt[0].Content);
            Assert.Equal(1, t.Prompt.Count(m => m.Content.Contains("<|image|>")));
            Assert.Equal("user", t.Prompt[^1].Role);
            string q = t.Prompt[^1].Content.Replace("<|image|>", "");
            switch (t.Type)
            {
                case "describe": Assert.Contains(q, DialogueGrammar.DescribeQuestions); Assert.Equal(captions[i], t.Reference); break;
                case "count": Assert.Equal("How many shapes are there?", q); Assert.EndsWith(attrs.Kind == "overlap" ? "two" : attrs.Count!, t.Reference); break;
                case "position": Assert.Equal($"it is {ShapeScenes.PositionPhrase(attrs.Position!)}", t.Reference); break;
                case "colour": Assert.Contains(t.Reference.Split(' ')[^1], new[] { attrs.Colour, attrs.Colour2 }); break;
                case "text": Assert.EndsWith(attrs.Text!, t.Reference); break;
                case "front": Assert.Equal($"the {attrs.Colour} {attrs.Shape} is in front", t.Reference); break;
                default: Assert.Fail(t.Type); break;
            }
        }
        Assert.Equal(DialogueGrammar.Types.OrderBy(x => x), seen.OrderBy(x => x));
        // Preference records: one question, a right and a wrong answer of the same form; every fourth with an edit.
        var prefs = SyntheticTestFiles.ReadJsonl(Path.Combine(a, "preferences.jsonl"));
        Assert.Equal(40, prefs.Count);
        for (int i = 0; i < prefs.Count; i++)
        {
            var p = prefs[i];
            string chosen = p["chosen"]!.GetValue<string>(), rejected = p["rejected"]!.GetValue<string>();
            Assert.NotEqual(chosen, rejected);
            Assert.Equal(chosen.Split(' ').Length - (i % 4 == 3 ? 2 : 0), rejected.Split(' ').Length);
            if (i % 4 == 3) Assert.Equal("i think " + p["edited"]!.GetValue<string>(), chosen);
            else Assert.Null(p["edited"]);
        }
    }

    [Fact]
    public void MakeDataDialoguesWritesEvaluationAtTheNextSeedAndTheTextDialogues()
    {
        string dir = SyntheticTestFiles.NewDir("dlg-all");
        DemoData.Write("dialogues", dir, 5, count: 12, evalCount: 6);
        var train = File.ReadAllLines(Path.Combine(dir, "dialogues", "manifest.jsonl"));
        var eval = File.ReadAllLines(Path.Combine(dir, "dialogues-eval", "manifest.jsonl"));
        Assert.Equal(12, train.Length);
        Assert.Equal(6, eval.Length);
        var next = DialogueDataMaker.Make(new DialogueMakerOptions(6, 6, 64, DemoData.HeldOutShapes), SyntheticTestFiles.NewDir("dlg-next"));
        Assert.Equal(File.ReadAllBytes(next.ManifestPath), File.ReadAllBytes(Path.Combine(dir, "dialogues-eval", "manifest.jsonl")));
        var chat = JsonlManifest.ReadDialogs(Path.Combine(dir, "instruct-chat.jsonl"), false, out _);
        Assert.Equal(2000, chat.Count);
        Assert.Contains(chat, d => d.Messages[0].Content.StartsWith(DialogueGrammar.RepeatPrefix, StringComparison.Ordinal)
            && d.Messages[0].Content[DialogueGrammar.RepeatPrefix.Length..] == d.Messages[1].Content);
        Assert.Contains(chat, d => d.Messages[0].Content.StartsWith("An image shows ", StringComparison.Ordinal));
        var repeat = JsonlManifest.ReadDialogs(Path.Combine(dir, "repeat-eval.jsonl"), false, out _);
        Assert.All(repeat, d => Assert.Equal(DialogueGrammar.RepeatPrefix + d.Messages[1].Content, d.Messages[0].Content));
        var cfg = ConfigLoader.Load(new TrainConfig(), Path.Combine(dir, "sft-instruct.json"));
        Assert.Equal("sft", cfg.Recipe);
        Assert.Equal(5, cfg.Seed);
    }

    [Fact]
    public void ConcatRebasesTheImagesOfDialogueRecords()
    {
        // A training mix of two dialogue sets: every image path still names the rendered file from the joined manifest's folder.
        string a = SyntheticTestFiles.NewDir("dlg-cat-a"), b = SyntheticTestFiles.NewDir("dlg-cat-b"), outDir = SyntheticTestFiles.NewDir("dlg-cat-out");
        var ma = DialogueDataMaker.Make(new DialogueMakerOptions(4, 31, 64, DemoData.HeldOutShapes), a);
        var mb = DialogueDataMaker.Make(new DialogueMakerOptions(3, 32, 64, DemoData.HeldOutShapes, Kinds: new[] { "overlap" }), b);
        string mix = Path.Combine(outDir, "mix", "manifest.jsonl");
        Assert.Equal(7, DemoManifests.Concat(mix, new[] { new DemoManifests.ManifestSlice(ma.ManifestPath, 0, null), new DemoManifests.ManifestSlice(mb.ManifestPath, 0, null) }, shuffleSeed: 3));
        var records = SyntheticTestFiles.ReadJsonl(mix);
        Assert.Equal(7, records.Count);
        var paths = records.Select(r => r["images"]!.AsArray().Single()!.GetValue<string>()).ToList();
        Assert.All(paths, p => Assert.True(File.Exists(Path.Combine(outDir, "mix", p)), p));
        Assert.Equal(3, paths.Count(p => p.Contains("dlg-cat-b", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData("it is red", "it is red.", true)]
    [InlineData("It is  red", "it is red", true)]
    [InlineData("it is blue", "it is red", false)]
    [InlineData("it says CAT", "it says CAT", true)]
    [InlineData("it says cat", "it says CAT", false)]
    [InlineData("there are two", "there are three", false)]
    public void AnswersMatchAsCaptionsDo(string prediction, string reference, bool match) =>
        Assert.Equal(match, DialogueGrammar.Matches(prediction, reference));

    [Fact]
    public void TheExtractedDecoderIsTheVisionModelsTextPath()
    {
        using var text = LlamaForCausalLM.Create(TextPresets.Get("tiny") with { VocabSize = 300, NumLayers = 2 }).InitializeWeights(3, 0.2);
        using var vlm = VisionLanguageModel.FromTextModel(text, VisionPresets.Get("tiny-vision").Vision, new[] { 0, 2 }, seed: 4);
        string dir = SyntheticTestFiles.NewDir("extract-vlm"), outDir = SyntheticTestFiles.NewDir("extract-lm");
        vlm.Save(dir);
        Assert.Equal(new[] { 1, 3 }, DecoderExtraction.Extract(dir, outDir));
        using var lm = LlamaForCausalLM.FromPretrained(outDir);
        using var ids = tensor(new long[] { 1, 5, 9, 200, 17 }).unsqueeze(0);
        using var expected = text.Forward(ids);
        using var got = lm.Forward(ids);
        Assert.Equal(300, lm.Config.EmbeddingRows);
        Assert.True(expected.allclose(got, 0, 0), "the extracted decoder computes what the text model did");
    }
}

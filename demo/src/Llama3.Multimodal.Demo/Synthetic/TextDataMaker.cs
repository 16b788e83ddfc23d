namespace Llama3.Multimodal.Demo;

/// <summary>
/// Makes the decoder's text in the language of the other grammars: <c>corpus.jsonl</c> (<c>{"text"}</c> documents of
/// image captions, spoken sentences, video captions and simple descriptions) and <c>dialogs.jsonl</c>
/// (<c>{"messages":[{"role","content"}]}</c>: describe/transcribe requests answered in the grammar, and questions
/// about a described scene). Both files are readable by the trainer's strict manifest reader.
/// </summary>
public static class TextDataMaker
{
    static readonly string[] Facts =
    {
        "a circle is round", "a square has four sides", "a triangle has three sides", "a star has five points",
        "a diamond has four corners", "a cross has four arms", "red and blue are colours", "green and yellow are colours",
        "purple and orange are colours", "the left is the opposite of the right", "the top is the opposite of the bottom",
        "two is more than one", "three is more than two", "a large shape is bigger than a small shape",
    };

    /// <summary>One sentence of any grammar (image caption, speech sentence, video caption or fact).</summary>
    public static string Sentence(Random rng)
    {
        switch (rng.Next(4))
        {
            case 0: return ImageCaptionGrammar.Caption(RandomAttributes(rng));
            case 1: return SpeechGrammar.Sentence(rng);
            case 2: return VideoCaptionGrammar.Caption(VideoScript.Sample(rng).Events);
            default: return Facts[rng.Next(Facts.Length)];
        }
    }

    internal static ImageAttributes RandomAttributes(Random rng)
    {
        T P<T>(IReadOnlyList<T> l) => l[rng.Next(l.Count)];
        return rng.Next(5) switch
        {
            0 => new ImageAttributes("single", P(ShapeScenes.Shapes), P(ShapeScenes.Colours), P(ShapeScenes.Sizes), P(ShapeScenes.Positions), "one"),
            1 => new ImageAttributes("count", P(ShapeScenes.Shapes), P(ShapeScenes.Colours), P(ShapeScenes.Sizes), null, ShapeScenes.Counts[rng.Next(1, 3)]),
            2 => new ImageAttributes("overlap", P(ShapeScenes.Shapes), P(ShapeScenes.Colours), Shape2: P(ShapeScenes.Shapes), Colour2: P(ShapeScenes.Colours)),
            3 => new ImageAttributes("word", Text: P(ShapeScenes.Words)),
            _ => new ImageAttributes("number", Text: rng.Next(0, 100).ToString(System.Globalization.CultureInfo.InvariantCulture)),
        };
    }

    /// <summary>Makes <c>corpus.jsonl</c> and <c>dialogs.jsonl</c> in <paramref name="outDir"/>; returns (corpus, dialogs).</summary>
    public static (MadeSet Corpus, MadeSet Dialogs) Make(TextMakerOptions o, string outDir)
    {
        if (o.Documents <= 0 || o.Dialogs <= 0) throw new SyntheticDataException($"document and dialog counts must be positive (got {o.Documents}, {o.Dialogs}).");
        string root = Path.GetFullPath(outDir);
        Directory.CreateDirectory(root);
        var rng = new Random(o.Seed);
        var docs = new List<string>();
        for (int i = 0; i < o.Documents; i++)
        {
            int n = rng.Next(3, 9);
            docs.Add(ManifestLine.Of(("text", string.Join(". ", Enumerable.Range(0, n).Select(_ => Sentence(rng))) + ".")));
        }
        var dialogs = new List<string>();
        for (int i = 0; i < o.Dialogs; i++) dialogs.Add(Dialog(rng));
        string cPath = Path.Combine(root, "corpus.jsonl"), dPath = Path.Combine(root, "dialogs.jsonl");
        ManifestLine.WriteAll(cPath, docs);
        ManifestLine.WriteAll(dPath, dialogs);
        return (new MadeSet(root, cPath, null, docs.Count), new MadeSet(root, dPath, null, dialogs.Count));
    }

    static string Dialog(Random rng)
    {
        string user, answer;
        switch (rng.Next(5))
        {
            case 0: user = SyntheticPrompts.DescribeImage; answer = ImageCaptionGrammar.Caption(RandomAttributes(rng)); break;
            case 1: user = SyntheticPrompts.TranscribeAudio; answer = SpeechGrammar.Sentence(rng); break;
            case 2: user = SyntheticPrompts.DescribeVideo; answer = VideoCaptionGrammar.Caption(VideoScript.Sample(rng).Events); break;
            default:
            {
                ImageAttributes a;
                do a = RandomAttributes(rng); while (ShapeScenes.IsPrintKind(a.Kind));
                string caption = ImageCaptionGrammar.Caption(a);
                switch (rng.Next(3))
                {
                    case 0: user = $"An image shows {caption}. What colour is the {(a.Kind == "overlap" ? "front" : "")}{(a.Kind == "overlap" ? " " : "")}shape?"; answer = a.Colour!; break;
                    case 1: user = $"An image shows {caption}. Which shape is it?"; answer = a.Shape!; break;
                    default: user = $"An image shows {caption}. How many shapes are there?"; answer = a.Kind == "overlap" ? "two" : a.Count!; break;
                }
                break;
            }
        }
        return "{\"messages\":[" + ManifestLine.Of(("role", "user"), ("content", user)) + "," + ManifestLine.Of(("role", "assistant"), ("content", answer)) + "]}";
    }
}

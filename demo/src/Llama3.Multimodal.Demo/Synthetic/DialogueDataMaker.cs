using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Llama3.Multimodal.Demo;

/// <summary>Options of <see cref="DialogueDataMaker"/>.</summary>
/// <param name="Count">Images (one dialogue and one preference record each).</param>
/// <param name="Seed">Generator seed (scenes as <see cref="ImageDataMaker"/> makes them for this seed; questions from a derived stream).</param>
/// <param name="Size">Image side in pixels.</param>
/// <param name="HeldOut">Colour+shape pairs never drawn.</param>
/// <param name="Kinds">Scene kinds (null = all).</param>
/// <param name="MaxParallelism">Threads rendering the images.</param>
public sealed record DialogueMakerOptions(int Count, int Seed, int Size = 64, IReadOnlyList<ColourShape>? HeldOut = null, IReadOnlyList<string>? Kinds = null,
    int MaxParallelism = 2);

/// <summary>
/// Makes the demo's image dialogues (GRAMMAR.md, "Dialogues") into a folder: <c>images/NNNNNN.png</c>;
/// <c>manifest.jsonl</c>, one multi-turn dialogue per image in the Llama 3.2 Vision Instruct layout
/// (<c>{"images": [PATH], "messages": [{"role", "content": [{"type": "image"}, {"type": "text", "text"}]}, …]}</c>: the image
/// in the first user turn, every question the scene answers in a shuffled order, each answered in a short plain
/// sentence); <c>labels.jsonl</c> (<c>{"image", "caption", "kind", "types"}</c>, <c>types</c> the question type of each
/// assistant turn, comma-separated); and <c>preferences.jsonl</c>, one preference record per image
/// (<c>{"images", "prompt", "chosen", "rejected", "edited"?}</c>, <c>prompt</c> a message list: one question, its right answer, a wrong answer of the
/// same form, and on every fourth record a hedged right answer as chosen with the plain right answer as the edit).
/// Deterministic for a seed.
/// </summary>
public static class DialogueDataMaker
{
    internal static readonly JsonSerializerOptions Json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Makes the set into <paramref name="outDir"/> (created if missing).</summary>
    public static MadeSet Make(DialogueMakerOptions o, string outDir)
    {
        if (o.Count <= 0) throw new SyntheticDataException($"dialogue count must be positive (got {o.Count}).");
        if (o.Size < 32 || o.Size > 1024) throw new SyntheticDataException($"image size {o.Size} is outside 32…1024 pixels.");
        var sampler = new ImageSceneSampler(o.Seed, o.HeldOut, HeldOutMode.Exclude, o.Kinds);
        var scenes = new ImageScene[o.Count];
        for (int i = 0; i < scenes.Length; i++) scenes[i] = sampler.Next();
        string root = Path.GetFullPath(outDir), imgDir = Path.Combine(root, "images");
        Directory.CreateDirectory(imgDir);
        var files = Enumerable.Range(0, scenes.Length).Select(i => Path.Combine(imgDir, $"{i:D6}.png")).ToArray();
        Parallel.For(0, scenes.Length, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, o.MaxParallelism) },
            i => File.WriteAllBytes(files[i], scenes[i].RenderPng(o.Size)));

        var rng = new Random(unchecked(o.Seed * 7919 + 39));
        var manifest = new List<string>();
        var labels = new List<string>();
        var prefs = new List<string>();
        for (int i = 0; i < scenes.Length; i++)
        {
            var a = scenes[i].Attributes;
            string rel = ManifestLine.Relative(root, files[i]);
            var qs = DialogueGrammar.Questions(a, rng);
            Shuffle(qs, rng);
            var messages = new JsonArray();
            for (int t = 0; t < qs.Count; t++)
            {
                messages.Add(User(qs[t].Question, t == 0));
                messages.Add(Assistant(qs[t].Answer));
            }
            manifest.Add(new JsonObject { ["images"] = new JsonArray(rel), ["messages"] = messages }.ToJsonString(Json));
            labels.Add(ManifestLine.Of(("image", rel), ("caption", ImageCaptionGrammar.Caption(a)), ("kind", a.Kind),
                ("types", string.Join(",", qs.Select(q => q.Type)))));

            var pq = qs[rng.Next(qs.Count)];
            var pref = new JsonObject
            {
                ["images"] = new JsonArray(rel),
                ["prompt"] = new JsonArray(User(pq.Question, true)),
                ["chosen"] = i % 4 == 3 ? "i think " + pq.Answer : pq.Answer,
                ["rejected"] = DialogueGrammar.WrongAnswer(a, pq, rng),
            };
            if (i % 4 == 3) pref["edited"] = pq.Answer;
            prefs.Add(pref.ToJsonString(Json));
        }
        string mPath = Path.Combine(root, "manifest.jsonl"), lPath = Path.Combine(root, "labels.jsonl");
        ManifestLine.WriteAll(mPath, manifest);
        ManifestLine.WriteAll(lPath, labels);
        ManifestLine.WriteAll(Path.Combine(root, "preferences.jsonl"), prefs);
        return new MadeSet(root, mPath, lPath, scenes.Length);
    }

    /// <summary>
    /// Text-only chat dialogues for the instruct decoder's <c>sft</c> (<c>{"messages": [user, assistant]}</c>): half
    /// "Repeat after me: SENTENCE" → SENTENCE (a sentence of any demo grammar), half a question about a scene described in
    /// words (<see cref="DialogueGrammar.Described"/>) → the answer the image dialogues give. Deterministic for a seed.
    /// </summary>
    public static IEnumerable<string> TextDialogues(int count, int seed, bool repeatOnly = false)
    {
        var rng = new Random(seed);
        for (int i = 0; i < count; i++)
        {
            string user, answer;
            if (repeatOnly || rng.Next(2) == 0)
            {
                string s = TextDataMaker.Sentence(rng);
                user = DialogueGrammar.RepeatPrefix + s;
                answer = s;
            }
            else
            {
                var a = TextDataMaker.RandomAttributes(rng);
                var qs = DialogueGrammar.Questions(a, rng);
                var q = qs[rng.Next(qs.Count)];
                user = DialogueGrammar.Described(a, q);
                answer = q.Answer;
            }
            yield return new JsonObject
            {
                ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = user }, new JsonObject { ["role"] = "assistant", ["content"] = answer }),
            }.ToJsonString(Json);
        }
    }

    static JsonObject User(string text, bool withImage)
    {
        var parts = new JsonArray();
        if (withImage) parts.Add(new JsonObject { ["type"] = "image" });
        parts.Add(new JsonObject { ["type"] = "text", ["text"] = text });
        return new JsonObject { ["role"] = "user", ["content"] = parts };
    }

    static JsonObject Assistant(string text) =>
        new() { ["role"] = "assistant", ["content"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = text }) };

    static void Shuffle<T>(IList<T> list, Random rng)
    {
        for (int i = list.Count - 1; i > 0; i--)
        {
            int j = rng.Next(i + 1);
            (list[i], list[j]) = (list[j], list[i]);
        }
    }
}

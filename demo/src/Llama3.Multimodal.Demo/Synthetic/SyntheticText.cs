using System.Text.Json.Nodes;
using Llama3.Multimodal.Text;

namespace Llama3.Multimodal.Demo;

/// <summary>
/// A small synthetic corpus for tests and the demo (<c>mm-demo make-data text</c>), generated from a fixed grammar so a
/// tiny model can learn it within a few dozen steps:
/// <list type="bullet">
/// <item>sentence := "the" ADJ NOUN VERB "the" ADJ NOUN "." | "the" NOUN "is" COLOR(NOUN) "."</item>
/// <item>document := 2–6 sentences separated by single spaces</item>
/// <item>dialog := [system "you answer briefly."]? user "what color is the NOUN?" → assistant "the NOUN is COLOR(NOUN)."</item>
/// <item>pair := prompt "what color is the NOUN?", chosen "the NOUN is COLOR(NOUN).", rejected "the NOUN is C." (C ≠ COLOR(NOUN)), every 4th with edited "the NOUN is COLOR(NOUN), of course."</item>
/// </list>
/// ADJ ∈ {red, blue, small, big, old, young, quick, lazy}; NOUN ∈ {cat, dog, bird, fish, fox, owl, bear, frog};
/// VERB ∈ {sees, likes, chases, finds, helps, follows}; COLOR is a fixed map (cat→black, dog→brown, bird→yellow,
/// fish→silver, fox→orange, owl→grey, bear→white, frog→green). All choices are uniform from a seeded generator.
/// </summary>
public static class SyntheticText
{
    static readonly string[] Adjectives = { "red", "blue", "small", "big", "old", "young", "quick", "lazy" };
    static readonly string[] Nouns = { "cat", "dog", "bird", "fish", "fox", "owl", "bear", "frog" };
    static readonly string[] Verbs = { "sees", "likes", "chases", "finds", "helps", "follows" };
    static readonly string[] Colors = { "black", "brown", "yellow", "silver", "orange", "grey", "white", "green" };

    /// <summary>The color the grammar assigns to <paramref name="noun"/>.</summary>
    public static string ColorOf(string noun) => Colors[Array.IndexOf(Nouns, noun)];

    /// <summary>One document of the grammar.</summary>
    public static string Document(Random rng)
    {
        int n = rng.Next(2, 7);
        var s = new List<string>();
        for (int i = 0; i < n; i++)
        {
            if (rng.Next(3) == 0) { string noun = Pick(rng, Nouns); s.Add($"the {noun} is {ColorOf(noun)}."); }
            else s.Add($"the {Pick(rng, Adjectives)} {Pick(rng, Nouns)} {Pick(rng, Verbs)} the {Pick(rng, Adjectives)} {Pick(rng, Nouns)}.");
        }
        return string.Join(' ', s);
    }

    static string Pick(Random rng, string[] a) => a[rng.Next(a.Length)];

    /// <summary>
    /// Writes <c>text.jsonl</c>, <c>text-eval.jsonl</c>, <c>chat.jsonl</c>, <c>pairs.jsonl</c>, <c>GRAMMAR.md</c> and a
    /// demo config per text recipe (<c>text-pretrain.json</c>, <c>sft.json</c>, <c>dpo.json</c>, <c>reward-model.json</c>)
    /// into <paramref name="outDir"/>.
    /// </summary>
    public static void Write(string outDir, int seed, int documents = 2000, int dialogs = 400, int pairs = 400)
    {
        Directory.CreateDirectory(outDir);
        var rng = new Random(seed);
        WriteLines(Path.Combine(outDir, "text.jsonl"), Enumerable.Range(0, documents).Select(_ => new JsonObject { ["text"] = Document(rng) }));
        WriteLines(Path.Combine(outDir, "text-eval.jsonl"), Enumerable.Range(0, Math.Max(8, documents / 20)).Select(_ => new JsonObject { ["text"] = Document(rng) }));
        WriteLines(Path.Combine(outDir, "chat.jsonl"), Enumerable.Range(0, dialogs).Select(_ =>
        {
            string noun = Pick(rng, Nouns);
            var msgs = new JsonArray();
            if (rng.Next(2) == 0) msgs.Add(new JsonObject { ["role"] = "system", ["content"] = "you answer briefly." });
            msgs.Add(new JsonObject { ["role"] = "user", ["content"] = $"what color is the {noun}?" });
            msgs.Add(new JsonObject { ["role"] = "assistant", ["content"] = $"the {noun} is {ColorOf(noun)}." });
            return new JsonObject { ["messages"] = msgs };
        }));
        int k = 0;
        WriteLines(Path.Combine(outDir, "pairs.jsonl"), Enumerable.Range(0, pairs).Select(_ =>
        {
            string noun = Pick(rng, Nouns), color = ColorOf(noun);
            string wrong = Colors.Where(c => c != color).ElementAt(rng.Next(Colors.Length - 1));
            var o = new JsonObject { ["prompt"] = $"what color is the {noun}?", ["chosen"] = $"the {noun} is {color}.", ["rejected"] = $"the {noun} is {wrong}." };
            if (k++ % 4 == 3) o["edited"] = $"the {noun} is {color}, of course.";
            return o;
        }));
        File.WriteAllText(Path.Combine(outDir, "GRAMMAR.md"), GrammarText(seed));
        foreach (var name in new[] { "text-pretrain", "sft", "dpo", "reward-model" })
        {
            var cfg = DemoConfigs.For(name) with { Seed = seed };
            cfg = cfg with { Command = $"mm-train {name} --config {Path.Combine(outDir, name + ".json")} --out runs/{name}" };
            AtomicFile.WriteAllText(Path.Combine(outDir, name + ".json"), ConfigLoader.ToJson(cfg));
        }
    }

    static void WriteLines(string path, IEnumerable<JsonObject> rows) => AtomicFile.WriteAllText(path, string.Concat(rows.Select(r => r.ToJsonString() + "\n")));

    static string GrammarText(int seed) => $"""
        # Synthetic text corpus (seed {seed})

        Made by `mm-demo make-data text --seed {seed}`. Grammar (all choices uniform):

        - sentence := "the" ADJ NOUN VERB "the" ADJ NOUN "." (2/3) | "the" NOUN "is" COLOR(NOUN) "." (1/3)
        - document := 2–6 sentences separated by spaces (`text.jsonl`, `text-eval.jsonl`)
        - dialog := [system "you answer briefly."] user "what color is the NOUN?" → assistant "the NOUN is COLOR(NOUN)." (`chat.jsonl`)
        - pair := prompt "what color is the NOUN?", chosen "the NOUN is COLOR(NOUN).", rejected "the NOUN is C" (C ≠ COLOR(NOUN)),
          every 4th pair also edited "the NOUN is COLOR(NOUN), of course." (`pairs.jsonl`)

        ADJ ∈ {string.Join(", ", Adjectives)}
        NOUN ∈ {string.Join(", ", Nouns)}
        VERB ∈ {string.Join(", ", Verbs)}
        COLOR: {string.Join(", ", Nouns.Select((n, i) => $"{n}→{Colors[i]}"))}

        Demo configs (byte tokenizer, `tiny` decoder): text-pretrain.json, sft.json, dpo.json, reward-model.json.
        """;
}

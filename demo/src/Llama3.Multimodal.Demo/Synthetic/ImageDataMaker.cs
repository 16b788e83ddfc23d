namespace Llama3.Multimodal.Demo;

/// <summary>
/// Makes captioned PNG images of rendered shape scenes and printed words/numbers (grammar: GRAMMAR.md). Writes
/// <c>images/NNNNNN.png</c>, <c>manifest.jsonl</c> (<c>{"image","caption","anchor"}</c>; <c>"anchor": true</c> on every
/// scene that is not print, the records the vision recipes' anchor loss holds) and <c>labels.jsonl</c>
/// (<c>{"image","caption","kind","shape","colour","size","position","count","shape2","colour2","text","background"}</c>,
/// absent fields left out). Deterministic for a seed.
/// </summary>
public static class ImageDataMaker
{
    /// <summary>Makes the set into <paramref name="outDir"/> (created if missing).</summary>
    public static MadeSet Make(ImageMakerOptions options, string outDir)
    {
        if (options.Count <= 0) throw new SyntheticDataException($"image count must be positive (got {options.Count}).");
        if (options.Size < 32 || options.Size > 1024) throw new SyntheticDataException($"image size {options.Size} is outside 32…1024 pixels.");
        var sampler = new ImageSceneSampler(options.Seed, options.HeldOut, options.Mode, options.Kinds);
        var scenes = new ImageScene[options.Count];
        for (int i = 0; i < scenes.Length; i++) scenes[i] = sampler.Next();

        string root = Path.GetFullPath(outDir), imgDir = Path.Combine(root, "images");
        Directory.CreateDirectory(imgDir);
        var files = Enumerable.Range(0, scenes.Length).Select(i => Path.Combine(imgDir, $"{i:D6}.png")).ToArray();
        Parallel.For(0, scenes.Length, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, options.MaxParallelism) },
            i => File.WriteAllBytes(files[i], scenes[i].RenderPng(options.Size)));

        var manifest = new List<string>();
        var labels = new List<string>();
        for (int i = 0; i < scenes.Length; i++)
        {
            var a = scenes[i].Attributes;
            string rel = ManifestLine.Relative(root, files[i]), caption = ImageCaptionGrammar.Caption(a);
            // Scenes (not print) opt in to the vision recipes' anchor loss: rounds that teach print hold them where they were.
            manifest.Add(ManifestLine.Of(("image", rel), ("caption", caption), ("anchor", ShapeScenes.IsPrintKind(a.Kind) ? null : true)));
            labels.Add(ManifestLine.Of(("image", rel), ("caption", caption), ("kind", a.Kind), ("shape", a.Shape), ("colour", a.Colour),
                ("size", a.Size), ("position", a.Position), ("count", a.Count), ("shape2", a.Shape2), ("colour2", a.Colour2),
                ("text", a.Text), ("background", scenes[i].Background)));
        }
        string mPath = Path.Combine(root, "manifest.jsonl"), lPath = Path.Combine(root, "labels.jsonl");
        ManifestLine.WriteAll(mPath, manifest);
        ManifestLine.WriteAll(lPath, labels);
        return new MadeSet(root, mPath, lPath, scenes.Length);
    }
}

namespace Llama3.Multimodal.Demo;

/// <summary>
/// Makes spoken sentences of <see cref="SpeechGrammar"/> with espeak-ng (resampled by sox to 16 kHz mono 16-bit PCM
/// WAV, without dither so files are reproducible). Writes <c>audio/NNNNNN.wav</c>, <c>manifest.jsonl</c>
/// (<c>{"audio","text"}</c>) and <c>labels.jsonl</c> (<c>{"audio","text","voice","speed","pitch"}</c>).
/// </summary>
public static class SpeechDataMaker
{
    /// <summary>Sample rate of the written WAVs.</summary>
    public const int SampleRate = 16000;

    /// <summary>Makes the set into <paramref name="outDir"/>; throws <see cref="SyntheticDataException"/> naming
    /// espeak-ng or sox if either is missing.</summary>
    public static MadeSet Make(SpeechMakerOptions o, string outDir)
    {
        if (o.Count <= 0) throw new SyntheticDataException($"utterance count must be positive (got {o.Count}).");
        string espeak = ExternalTool.Require("espeak-ng", "espeak-ng"), sox = ExternalTool.Require("sox", "sox");
        var bases = o.Voices ?? SpeechMakerOptions.DefaultVoices;
        var variants = o.Variants ?? SpeechMakerOptions.DefaultVariants;
        var speeds = o.Speeds ?? SpeechMakerOptions.DefaultSpeeds;
        var pitches = o.Pitches ?? SpeechMakerOptions.DefaultPitches;
        foreach (int p in pitches) if (p < 0 || p > 99) throw new SyntheticDataException($"pitch {p} is outside espeak-ng's 0…99.");
        foreach (int s in speeds) if (s < 80 || s > 450) throw new SyntheticDataException($"speed {s} is outside espeak-ng's 80…450 words per minute.");
        CheckVoices(espeak, bases, variants);
        var voices = bases.SelectMany(b => variants.Select(v => b + v)).ToList();
        var hv = o.HeldOutVoices ?? Array.Empty<string>();
        var hs = o.HeldOutSpeeds ?? Array.Empty<int>();
        foreach (int s in hs) if (!speeds.Contains(s)) throw new SyntheticDataException($"held-out speed {s} is not one of the speeds ({string.Join(", ", speeds)}).");
        bool Held(string v) => hv.Any(h => h == v || v.Split('+')[0] == h);
        foreach (var h in hv) if (!voices.Any(v => h == v || v.Split('+')[0] == h)) throw new SyntheticDataException($"held-out voice \"{h}\" is not in the voice pool.");
        List<string> vPool = o.Mode switch
        {
            HeldOutMode.Exclude => voices.Where(v => !Held(v)).ToList(),
            HeldOutMode.Only when hv.Count > 0 => voices.Where(Held).ToList(),
            _ => voices,
        };
        List<int> sPool = o.Mode switch
        {
            HeldOutMode.Exclude => speeds.Where(s => !hs.Contains(s)).ToList(),
            HeldOutMode.Only when hs.Count > 0 => hs.ToList(),
            _ => speeds.ToList(),
        };
        if (o.Mode == HeldOutMode.Only && hv.Count == 0 && hs.Count == 0) throw new SyntheticDataException("held-out mode Only needs held-out voices or speeds.");
        if (vPool.Count == 0 || sPool.Count == 0) throw new SyntheticDataException("every voice or every speed is held out; nothing left to make.");

        var rng = new Random(o.Seed);
        var items = new (string Text, string Voice, int Speed, int Pitch)[o.Count];
        for (int i = 0; i < items.Length; i++)
            items[i] = (SpeechGrammar.Sentence(rng), vPool[rng.Next(vPool.Count)], sPool[rng.Next(sPool.Count)], pitches[rng.Next(pitches.Count)]);

        string root = Path.GetFullPath(outDir), audioDir = Path.Combine(root, "audio");
        Directory.CreateDirectory(audioDir);
        var files = Enumerable.Range(0, items.Length).Select(i => Path.Combine(audioDir, $"{i:D6}.wav")).ToArray();
        Parallel.For(0, items.Length, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, o.MaxParallelism) }, i =>
        {
            var it = items[i];
            var wav = ExternalTool.Run(espeak, new[] { "-v", it.Voice, "-s", Inv(it.Speed), "-p", Inv(it.Pitch), "--stdout", it.Text });
            if (wav.Length < 100) throw new SyntheticDataException($"espeak-ng produced no audio for voice {it.Voice}: \"{it.Text}\".");
            string tmp = files[i] + ".tmp.wav";
            ExternalTool.Run(sox, new[] { "-D", "-t", "wav", "-", "-t", "wav", "-r", Inv(SampleRate), "-c", "1", "-b", "16", "-e", "signed-integer", tmp }, stdin: wav);
            File.Move(tmp, files[i], overwrite: true);
        });

        var manifest = new List<string>();
        var labels = new List<string>();
        for (int i = 0; i < items.Length; i++)
        {
            string rel = ManifestLine.Relative(root, files[i]);
            manifest.Add(ManifestLine.Of(("audio", rel), ("text", items[i].Text)));
            labels.Add(ManifestLine.Of(("audio", rel), ("text", items[i].Text), ("voice", items[i].Voice), ("speed", items[i].Speed), ("pitch", items[i].Pitch)));
        }
        string mPath = Path.Combine(root, "manifest.jsonl"), lPath = Path.Combine(root, "labels.jsonl");
        ManifestLine.WriteAll(mPath, manifest);
        ManifestLine.WriteAll(lPath, labels);
        return new MadeSet(root, mPath, lPath, items.Length);
    }

    // espeak-ng silently ignores an unknown "+variant", so both lists are checked against what it reports.
    static void CheckVoices(string espeak, IReadOnlyList<string> bases, IReadOnlyList<string> variants)
    {
        static IEnumerable<string[]> Rows(byte[] listing) => System.Text.Encoding.UTF8.GetString(listing)
            .Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(c => c.Length >= 5);
        var languages = Rows(ExternalTool.Run(espeak, new[] { "--voices" })).Select(c => c[1]).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var known = Rows(ExternalTool.Run(espeak, new[] { "--voices=variant" })).Select(c => c[4].StartsWith("!v/", StringComparison.Ordinal) ? c[4][3..] : c[4]).ToHashSet(StringComparer.Ordinal);
        foreach (var b in bases)
            if (!languages.Contains(b)) throw new SyntheticDataException($"espeak-ng has no voice \"{b}\" (see espeak-ng --voices).");
        foreach (var v in variants)
            if (v.Length > 0 && (!v.StartsWith('+') || !known.Contains(v[1..])))
                throw new SyntheticDataException($"espeak-ng has no variant \"{v}\" (variants are written \"+name\", e.g. +m3, +f2; see espeak-ng --voices=variant).");
    }

    static string Inv(int v) => v.ToString(System.Globalization.CultureInfo.InvariantCulture);
}

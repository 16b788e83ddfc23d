using System.Text;
using Llama3.Multimodal.Text;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training.Tests.Data;

/// <summary>WebDataset shards and Parquet as data sources: resolution, grouping, sharding over ranks, shuffling, resume, bad records.</summary>
public class ShardSourceTests
{
    /// <summary>A text-only stream over shards whose micro-batches record their samples' keys.</summary>
    sealed class KeyStream : IDisposable
    {
        public readonly List<string[]?> Batches = new();
        public readonly ShardBatchSource<string, string> Source;

        public KeyStream(IReadOnlyList<ShardUnit> units, int readers, int rank = 0, int world = 1, DataCursor? start = null, bool shuffle = true,
            int buffer = 4, int micro = 2, bool skipBad = false, Func<ShardSample, string>? parse = null)
        {
            Source = new ShardBatchSource<string, string>(units, parse ?? (s => s.Text("txt") ?? throw new FormatException("no txt member.")), (r, _, _) => r,
                (items, _, end) => { Batches.Add(items.ToArray()); return new MicroBatch { End = end, Samples = items.Count }; },
                micro, seed: 11, shuffle, buffer, readers, rank, world, workers: 2, prefetch: 3, skipBad, start ?? DataCursor.Start, "test");
        }

        /// <summary>Next micro-batch: its keys (null for another rank's) and the cursor after it.</summary>
        public (string[]? Keys, DataCursor End) Next()
        {
            using var b = Source.Next(16);
            return (b.Remote ? null : Batches[^1], b.End);
        }

        public void Dispose() => Source.Dispose();
    }

    static IReadOnlyList<ShardUnit> Units(string dir, params int[] sizes)
    {
        Corpora.TextShards(dir, sizes);
        var (kind, files) = DataSources.Resolve(dir);
        Assert.Equal(DataSourceKind.Tar, kind);
        return DataSources.Units(kind, files);
    }

    [Fact]
    public void FilesFoldersAndBracePatternsResolve()
    {
        string dir = TestRuns.TempDir();
        Corpora.TextShards(dir, 1, 1, 1, 1);
        var (kind, files) = DataSources.Resolve(Path.Combine(dir, "shard-{000001..000003}.tar"));
        Assert.Equal(DataSourceKind.Tar, kind);
        Assert.Equal(new[] { "shard-000001.tar", "shard-000002.tar", "shard-000003.tar" }, files.Select(Path.GetFileName));
        Assert.Equal(4, DataSources.Resolve(dir).Files.Count);
        Assert.Equal(DataSourceKind.Tar, DataSources.Resolve(Path.Combine(dir, "shard-000000.tar")).Kind);
        string manifest = Path.Combine(dir, "m.jsonl");
        File.WriteAllText(manifest, "");
        Assert.Equal(DataSourceKind.Jsonl, DataSources.Resolve(manifest).Kind);
        var e = Assert.Throws<DataFormatException>(() => DataSources.Resolve(Path.Combine(dir, "shard-{000002..000005}.tar")));
        Assert.Contains("2 of 4 files", e.Message);
        Assert.Throws<DataFormatException>(() => DataSources.Resolve(Path.Combine(dir, "nothing-here")));
    }

    [Fact]
    public void TarMembersGroupByKeyAndSkipWithoutReading()
    {
        Assert.Equal(("dir/a", "seg.png"), TarShard.Split("dir/a.seg.png"));
        Assert.Equal(("x.y/b", "txt"), TarShard.Split("x.y/b.txt"));
        string dir = TestRuns.TempDir();
        string tar = Corpora.Tar(Path.Combine(dir, "s.tar"), new (string, byte[])[]
        {
            ("000.jpg", new byte[] { 1 }), ("000.txt", "zero"u8.ToArray()),
            ("001.jpg", new byte[] { 2 }), ("001.json", "{\"caption\":\"one\"}"u8.ToArray()),
            ("002.flac", new byte[] { 3 }), ("002.cls", "7"u8.ToArray()),
        });
        var unit = new TarShard(tar);
        var all = unit.Read(0, default).ToList();
        Assert.Equal(new[] { "000", "001", "002" }, all.Select(s => s.Key));
        Assert.Equal(new[] { "jpg", "txt" }, all[0].Members.Keys.Order());
        Assert.Equal("one", ShardRecords.Text(all[1], null));
        Assert.Equal("7", ShardRecords.Text(all[2], null));
        Assert.Equal(new[] { "001", "002" }, unit.Read(1, default).Select(s => s.Key));
        Assert.Empty(unit.Read(3, default));
    }

    [Fact]
    public void RanksReadDistinctShardsAndTogetherMakeTheOneProcessStream()
    {
        var units = Units(TestRuns.TempDir(), 3, 5, 4, 6, 2, 5);
        const int steps = 40;                                 // 25 samples an epoch: several epochs per reader
        var one = new List<string[]>();
        using (var s = new KeyStream(units, readers: 2))
            for (int m = 0; m < steps; m++) one.Add(s.Next().Keys!);
        using var r0 = new KeyStream(units, readers: 2, rank: 0, world: 2);
        using var r1 = new KeyStream(units, readers: 2, rank: 1, world: 2);
        var shards0 = new HashSet<string>();
        var shards1 = new HashSet<string>();
        for (int m = 0; m < steps; m++)
        {
            var (a, _) = r0.Next();
            var (b, _) = r1.Next();
            Assert.True((a is null) != (b is null), $"micro-batch {m}: exactly one rank must read it");
            Assert.Equal(one[m], a ?? b);
            foreach (var k in a ?? Array.Empty<string>()) shards0.Add(k[..3]);
            foreach (var k in b ?? Array.Empty<string>()) shards1.Add(k[..3]);
        }
        // In the first epoch, each rank opened only its own shards.
        var first0 = one.Where((_, m) => m % 2 == 0).Take(3).SelectMany(k => k).Select(k => k[..3]).ToHashSet();
        var first1 = one.Where((_, m) => m % 2 == 1).Take(3).SelectMany(k => k).Select(k => k[..3]).ToHashSet();
        Assert.Empty(first0.Intersect(first1));
        Assert.NotEmpty(shards0); Assert.NotEmpty(shards1);
    }

    [Fact]
    public void EachReaderEpochHoldsEveryRecordOnceInASeededOrder()
    {
        var units = Units(TestRuns.TempDir(), 3, 5, 4);
        var seq = new List<string>();
        using (var s = new KeyStream(units, readers: 1, micro: 1, buffer: 5))
            for (int i = 0; i < 24; i++) seq.Add(s.Next().Keys![0]);
        var all = Enumerable.Range(0, 3).SelectMany(sh => Enumerable.Range(0, new[] { 3, 5, 4 }[sh]).Select(i => $"s{sh:D2}-{i:D3}")).Order().ToList();
        Assert.Equal(all, seq.Take(12).Order());
        Assert.Equal(all, seq.Skip(12).Order());
        Assert.NotEqual(seq.Take(12), seq.Skip(12));
        Assert.NotEqual(all, seq.Take(12));                   // shuffled
        using var again = new KeyStream(units, readers: 1, micro: 1, buffer: 5);
        Assert.Equal(seq.Take(12), Enumerable.Range(0, 12).Select(_ => again.Next().Keys![0]));
        using var plain = new KeyStream(units, readers: 1, micro: 1, shuffle: false);
        Assert.Equal(new[] { "s00-000", "s00-001", "s00-002", "s01-000" }, Enumerable.Range(0, 4).Select(_ => plain.Next().Keys![0]));
    }

    [Fact]
    public void ResumingAtAnyCursorContinuesBitExactlyOnAnyWorldSize()
    {
        var units = Units(TestRuns.TempDir(), 3, 5, 4, 6);
        var keys = new List<string[]>();
        var ends = new List<DataCursor>();
        using (var s = new KeyStream(units, readers: 2, buffer: 3))
            for (int m = 0; m < 30; m++) { var (k, e) = s.Next(); keys.Add(k!); ends.Add(e); }
        foreach (int at in new[] { 0, 1, 4, 7, 12, 17, 22 })
        {
            using (var one = new KeyStream(units, readers: 2, buffer: 3, start: ends[at]))
                for (int m = at + 1; m < 30; m++) Assert.Equal(keys[m], one.Next().Keys);
            // The same cursor resumed on two ranks: each builds its own readers' micro-batches.
            using var r0 = new KeyStream(units, readers: 2, rank: 0, world: 2, buffer: 3, start: ends[at]);
            using var r1 = new KeyStream(units, readers: 2, rank: 1, world: 2, buffer: 3, start: ends[at]);
            for (int m = at + 1; m < 30; m++)
            {
                var (a, _) = r0.Next();
                var (b, _) = r1.Next();
                Assert.Equal(keys[m], a ?? b);
            }
        }
        Assert.True(ends[^1].Readers!.Where((_, i) => i % ShardBatchSource<int, int>.StateWidth == 0).All(e => e >= 1), "the run crossed an epoch");
        var bad = new DataCursor(0, 3, 0) { Readers = new long[ShardBatchSource<int, int>.StateWidth * 3] };
        Assert.Contains("data.readers = 3", Assert.Throws<ConfigException>(() => new KeyStream(units, readers: 2, start: bad)).Message);
        Assert.Contains("multiple", Assert.Throws<ConfigException>(() => new KeyStream(units, readers: 3, world: 2)).Message);
    }

    [Fact]
    public void ASingleTarSplitsOverTwoRanksEachRecordOncePerEpochAndResumesBitExactly()
    {
        string dir = TestRuns.TempDir();
        var files = Corpora.TextShards(dir, 9);
        var (kind, resolved) = DataSources.Resolve(files[0]);
        // Fewer shards than readers: the tar's samples are dealt to two interleaved parts.
        var units = DataSources.Units(kind, resolved, readers: 2);
        Assert.Equal(2, units.Count);
        Assert.Equal(new[] { "s00-000", "s00-002", "s00-004", "s00-006", "s00-008" }, units[0].Read(0, default).Select(s => s.Key));
        Assert.Equal(new[] { "s00-005", "s00-007" }, units[1].Read(2, default).Select(s => s.Key));
        Assert.Contains("part 2 of 2", units[1].Name);
        Assert.Single(DataSources.Units(kind, resolved));

        // Two ranks, one reader each, one sample per micro-batch; each epoch deals the two parts to the readers in a
        // seeded order.
        const int steps = 24;
        var keys = new List<string>();
        var ends = new List<DataCursor>();
        var seen = new Dictionary<(int Reader, long Epoch), List<string>>();
        using (var r0 = new KeyStream(units, readers: 2, rank: 0, world: 2, micro: 1, buffer: 3))
        using (var r1 = new KeyStream(units, readers: 2, rank: 1, world: 2, micro: 1, buffer: 3))
            for (int m = 0; m < steps; m++)
            {
                var (a, e0) = r0.Next();
                var (b, e1) = r1.Next();
                Assert.True((a is null) != (b is null), $"micro-batch {m}: exactly one rank must read it");
                keys.Add((a ?? b)![0]);
                // The reader's state before this micro-batch names the epoch its sample belongs to.
                long epoch = m < 2 ? 0 : ends[m - 1].Readers![(m % 2) * ShardBatchSource<int, int>.StateWidth];
                if (!seen.TryGetValue((m % 2, epoch), out var list)) seen[(m % 2, epoch)] = list = new List<string>();
                list.Add((a ?? b)![0]);
                // The trainer sums the ranks' cursors: each fills in its own reader's numbers.
                ends.Add(new DataCursor(Math.Min(e0.Epoch, e1.Epoch), m + 1, 0) { Readers = e0.Readers!.Zip(e1.Readers!, (x, y) => x + y).ToArray() });
            }
        var all = Enumerable.Range(0, 9).Select(i => $"s00-{i:D3}").ToList();
        // Per epoch each reader yields one part whole, so the two readers together yield every record exactly once.
        for (long e = 0; e < 2; e++)
        {
            Assert.Equal(all, seen[(0, e)].Concat(seen[(1, e)]).Order());
            Assert.Contains(seen[(0, e)].Count, new[] { 4, 5 });
        }
        Assert.NotEqual(seen[(0, 0)].Concat(seen[(1, 0)]), seen[(0, 1)].Concat(seen[(1, 1)]));   // a fresh seeded order each epoch

        // One process with both readers makes the same stream; resuming at any cursor continues it bit-exactly.
        using (var one = new KeyStream(units, readers: 2, micro: 1, buffer: 3))
            Assert.Equal(keys, Enumerable.Range(0, steps).Select(_ => one.Next().Keys![0]));
        foreach (int at in new[] { 0, 3, 8, 13 })
        {
            using var r0 = new KeyStream(units, readers: 2, rank: 0, world: 2, micro: 1, buffer: 3, start: ends[at]);
            using var r1 = new KeyStream(units, readers: 2, rank: 1, world: 2, micro: 1, buffer: 3, start: ends[at]);
            using var one = new KeyStream(units, readers: 2, micro: 1, buffer: 3, start: ends[at]);
            for (int m = at + 1; m < steps; m++)
            {
                var (a, _) = r0.Next();
                var (b, _) = r1.Next();
                Assert.Equal(keys[m], (a ?? b)![0]);
                Assert.Equal(keys[m], one.Next().Keys![0]);
            }
        }
    }

    [Fact]
    public void BadSamplesAreSkippedAndCountedNamingTheShardAndKey()
    {
        string dir = TestRuns.TempDir();
        string tar = Corpora.Tar(Path.Combine(dir, "shard-000000.tar"), new (string, byte[])[]
        {
            ("a.png", Corpora.Image(1)), ("a.txt", "good one"u8.ToArray()),
            ("b.png", Corpora.Image(2)),                                          // no caption
            ("c.png", new byte[] { 1, 2, 3, 4 }), ("c.txt", "corrupt"u8.ToArray()),
            ("d.png", Corpora.Image(3)), ("d.txt", "good two"u8.ToArray()),
        });
        var units = DataSources.Units(DataSourceKind.Tar, new[] { tar });
        var data = new DataSection();
        Func<ShardSample, string> parse = s =>
        {
            var r = ShardRecords.ImageCaption(s, data);
            Vision.ImageLoader.Decode(r.Data!, r.Image);
            return r.Caption;
        };
        using (var s = new KeyStream(units, readers: 1, micro: 2, shuffle: false, skipBad: true, parse: parse))
        {
            Assert.Equal(new[] { "good one", "good two" }, s.Next().Keys);
            Assert.Equal(2, s.Source.Skipped);
            Assert.Contains(tar, s.Source.LastSkip);
            Assert.Contains("key c", s.Source.LastSkip);
        }
        using (var s = new KeyStream(units, readers: 1, micro: 2, shuffle: false, parse: parse))
        {
            var e = Assert.Throws<DataFormatException>(() => s.Next());
            Assert.Contains($"{tar}, key b", e.Message);
            Assert.Contains("no text", e.Message);
        }
    }

    [Fact]
    public void ATruncatedShardLosesOnlyItsRest()
    {
        string dir = TestRuns.TempDir();
        var files = Corpora.TextShards(dir, 6, 4);
        var bytes = File.ReadAllBytes(files[0]);
        int data3 = bytes.AsSpan().LastIndexOf("s00-003"u8);            // the 4th sample's data (its name comes earlier, in headers)
        File.WriteAllBytes(files[0], bytes[..(data3 + 3)]);
        var units = DataSources.Units(DataSourceKind.Tar, files);
        using (var s = new KeyStream(units, readers: 1, micro: 7, shuffle: false, skipBad: true))
        {
            var keys = s.Next().Keys!;
            Assert.Equal(new[] { "s00-000", "s00-001", "s00-002", "s01-000", "s01-001", "s01-002", "s01-003" }, keys);
            Assert.Equal(1, s.Source.Skipped);
            Assert.Contains(files[0], s.Source.LastSkip);
            Assert.Contains("rest of the shard", s.Source.LastSkip);
        }
        using (var s = new KeyStream(units, readers: 1, micro: 7, shuffle: false))
            Assert.Contains(files[0], Assert.Throws<DataFormatException>(() => s.Next()).Message);
    }

    [Fact]
    public void ParquetRowGroupsAreShardsWithHfImageAndAudioStructs()
    {
        string dir = TestRuns.TempDir();
        var rows = Enumerable.Range(0, 5).Select(i => (Corpora.Image(i), $"{i}.png", $"caption {i}")).ToList();
        string file = Corpora.Parquet(Path.Combine(dir, "train-00000-of-00001.parquet"), "image", "caption", rows, rowGroups: 2);
        var (kind, files) = DataSources.Resolve(dir);
        Assert.Equal(DataSourceKind.Parquet, kind);
        var units = DataSources.Units(kind, files);
        Assert.Equal(2, units.Count);
        var samples = units.SelectMany(u => u.Read(0, default)).ToList();
        Assert.Equal(5, samples.Count);
        Assert.Equal(new[] { "row 0", "row 1", "row 2", "row 3", "row 4" }, samples.Select(s => s.Key));
        var rec = ShardRecords.ImageCaption(samples[3], new DataSection());
        Assert.Equal("caption 3", rec.Caption);
        Assert.Equal(rows[3].Item1, rec.Data);
        Assert.Contains("row group 1", rec.Image);
        Assert.Equal(new[] { "row 4" }, units[1].Read(1, default).Select(s => s.Key));
        // Two row groups for five readers: each split in three interleaved parts; every row once, the parts of a group
        // reading it together share the decoded columns (the same member arrays).
        var parts = DataSources.Units(kind, files, readers: 5);
        Assert.Equal(6, parts.Count);
        Assert.Equal(new[] { "row 0", "row 1", "row 2", "row 3", "row 4" }, parts.SelectMany(u => u.Read(0, default)).Select(x => x.Key).Order());
        using (var first = parts[0].Read(0, default).GetEnumerator())
        using (var second = parts[1].Read(0, default).GetEnumerator())
        {
            Assert.True(first.MoveNext() && second.MoveNext());
            Assert.Equal(new[] { "row 0", "row 1" }, new[] { first.Current.Key, second.Current.Key });
            var again = parts[0].Read(0, default).First();
            Assert.Same(first.Current.Members["image"], again.Members["image"]);
        }
        // Named columns instead of the defaults.
        var custom = ShardRecords.ImageCaption(samples[0], new DataSection { ImageColumn = "image", TextColumn = "caption" });
        Assert.Equal("caption 0", custom.Caption);
        var e = Assert.Throws<FormatException>(() => ShardRecords.ImageCaption(samples[0], new DataSection { TextColumn = "sentence" }));
        Assert.Contains("'sentence'", e.Message);

        string wav = Path.Combine(dir, "a.flac");
        Corpora.Speak("hello there", wav);
        string audio = Corpora.Parquet(Path.Combine(dir, "speech.parquet"), "audio", "sentence", new[] { (File.ReadAllBytes(wav), "a.flac", "hello there") }, 1);
        var s = DataSources.Units(DataSourceKind.Parquet, new[] { audio })[0].Read(0, default).Single();
        var a = ShardRecords.AudioText(s, new DataSection());
        Assert.Equal(("hello there", "asr", (string?)null), (a.Text, a.Task, a.Language));
        var fromBytes = Speech.AudioLoader.Load(a.Data!, a.Audio);
        var fromFile = Speech.AudioLoader.Load(wav);
        Assert.Equal(fromFile, fromBytes);
    }
}

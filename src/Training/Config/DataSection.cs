namespace Llama3.Multimodal.Training;

/// <summary>
/// Training data and sequence length. <see cref="Train"/> and <see cref="Eval"/> each name one source: a JSONL manifest
/// (paths inside are relative to the manifest), WebDataset tar shards (a <c>.tar</c> file, a folder of them, or a brace
/// pattern such as <c>shards/train-{000000..000127}.tar</c>) or Parquet (a <c>.parquet</c> file, a folder of them, or a
/// brace pattern). Shards and Parquet row groups stream: nothing is extracted to disk.
/// </summary>
public sealed record DataSection
{
    /// <summary>Training source: JSONL manifest, tar shard(s) or Parquet file(s). Relative paths are resolved against the config file's folder.</summary>
    public string Train { get; init; } = "";
    /// <summary>Optional evaluation manifest (same kind as <see cref="Train"/>).</summary>
    public string? Eval { get; init; }
    /// <summary>Sequence length in tokens (packed length for pretraining, truncation length otherwise); default 4096.</summary>
    public int SeqLen { get; init; } = 4096;
    /// <summary>Skip and count malformed records (naming the manifest line, or the shard and key) instead of failing on the first one.</summary>
    public bool SkipBadRecords { get; init; }
    /// <summary>Shuffle the training records each epoch (seeded by <see cref="TrainConfig.Seed"/> and the epoch).</summary>
    public bool Shuffle { get; init; } = true;
    /// <summary>Records prepared ahead on the background workers (per reader for shards); default 64.</summary>
    public int Prefetch { get; init; } = 64;
    /// <summary>Shards and Parquet: readers that make up the stream; reader <c>i</c> reads shards <c>i, i + n, …</c> of each
    /// epoch's seeded shard order and micro-batch <c>m</c> comes from reader <c>m mod n</c>. Each data-parallel rank owns the
    /// readers <c>rank, rank + world, …</c> and reads only their shards, so n must be a multiple of the world size. The
    /// stream (and a resumed run) is the same on every world size that divides n; 0 (default) = the world size. A source with
    /// fewer shards than readers (e.g. a single <c>.tar</c>) has each shard split into interleaved parts (sample i to part
    /// i mod parts), so every reader has shards of its own.</summary>
    public int Readers { get; init; }
    /// <summary>Shards and Parquet: records each reader loads into memory and emits in a seeded random order (the bounded
    /// shuffle buffer); 1 keeps the stored order. Default 1000.</summary>
    public int ShuffleBuffer { get; init; } = 1000;
    /// <summary>Background threads that decode and preprocess records (in stream order, whatever the source); 0 (default) = min(4, cores).</summary>
    public int Workers { get; init; }
    /// <summary>The image: a Parquet column (a binary column or an HF <c>Image</c> struct {bytes, path}) or a WebDataset member
    /// extension (<c>jpg</c>); null = <c>image</c>/<c>jpg</c>/<c>jpeg</c>/<c>png</c>/<c>webp</c>.</summary>
    public string? ImageColumn { get; init; }
    /// <summary>The audio: a Parquet column (binary or an HF <c>Audio</c> struct {bytes, path}) or a member extension
    /// (<c>flac</c>); null = <c>audio</c>/<c>flac</c>/<c>wav</c>/<c>mp3</c>/<c>ogg</c>.</summary>
    public string? AudioColumn { get; init; }
    /// <summary>The video: a Parquet column or a member extension (<c>mp4</c>); null = <c>video</c>/<c>mp4</c>/<c>webm</c>/<c>mkv</c>.</summary>
    public string? VideoColumn { get; init; }
    /// <summary>The target text: a Parquet column, a member extension (<c>txt</c>, <c>cls</c>) or a field of the <c>json</c>
    /// member; null = <c>text</c>/<c>caption</c>/<c>sentence</c>/<c>transcription</c> (and <c>txt</c>, then <c>cls</c>, in shards).</summary>
    public string? TextColumn { get; init; }
    /// <summary>Preference data in shards and Parquet (<c>dpo</c>, <c>reward-model</c>, <c>vision-dpo</c>, <c>vision-reward</c>):
    /// the prompt column (a string or a message list); null = <c>prompt</c>, else <c>question</c> for the image recipes.</summary>
    public string? PromptColumn { get; init; }
    /// <summary>Preference data in shards and Parquet: the preferred-response column (a string or an assistant message list); null = <c>chosen</c>.</summary>
    public string? ChosenColumn { get; init; }
    /// <summary>Preference data in shards and Parquet: the dispreferred-response column; null = <c>rejected</c>.</summary>
    public string? RejectedColumn { get; init; }
}

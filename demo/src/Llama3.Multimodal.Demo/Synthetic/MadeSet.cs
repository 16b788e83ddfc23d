namespace Llama3.Multimodal.Demo;

/// <summary>What a maker wrote.</summary>
/// <param name="Directory">Output folder.</param>
/// <param name="ManifestPath">Training manifest (<c>manifest.jsonl</c>): only the fields the trainer's strict reader
/// accepts (<c>{"image","caption"}</c>, <c>{"audio","text"}</c>, <c>{"video","caption"}</c>, <c>{"text"}</c> or <c>{"messages"}</c>).</param>
/// <param name="LabelsPath">Labels manifest (<c>labels.jsonl</c>): the same records in the same order plus structured
/// attributes for scoring (image attributes; voice, speed, pitch; video events); null where a maker has none.</param>
/// <param name="Count">Number of records.</param>
public sealed record MadeSet(string Directory, string ManifestPath, string? LabelsPath, int Count);

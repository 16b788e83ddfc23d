namespace Llama3.Multimodal.Training;

/// <summary>
/// Checkpoints under <c>OUT/checkpoints/step-NNNNNNNN</c>. Each is written completely into a hidden temporary folder
/// and then renamed into place, so an interrupted write never damages an existing checkpoint; only the last K are kept.
/// </summary>
public sealed class CheckpointStore
{
    /// <summary>The folder holding the checkpoints.</summary>
    public string Root { get; }
    readonly int _keep;

    /// <summary>A store in <paramref name="root"/> keeping the last <paramref name="keepLast"/> checkpoints.</summary>
    public CheckpointStore(string root, int keepLast) { Root = root; _keep = keepLast; Directory.CreateDirectory(root); }

    /// <summary>Name of the checkpoint of <paramref name="step"/>.</summary>
    public static string NameOf(long step) => $"step-{step:D8}";

    /// <summary>Complete checkpoints, oldest first.</summary>
    public IReadOnlyList<string> List() => Directory.GetDirectories(Root, "step-*")
        .Where(d => File.Exists(Path.Combine(d, "trainer_state.json")))
        .OrderBy(d => d, StringComparer.Ordinal).ToList();

    /// <summary>The newest complete checkpoint, or null.</summary>
    public string? Latest() => List().LastOrDefault();

    /// <summary>Writes a checkpoint with <paramref name="write"/> (given the temporary folder), commits it by rename, prunes old ones.</summary>
    public string Save(long step, Action<string> write, Action<string>? beforeCommit = null)
    {
        string final = Path.Combine(Root, NameOf(step));
        string tmp = Path.Combine(Root, "." + NameOf(step) + ".tmp-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(tmp);
        try
        {
            write(tmp);
            beforeCommit?.Invoke(tmp);
            if (Directory.Exists(final)) Directory.Delete(final, true);
            Directory.Move(tmp, final);
        }
        catch
        {
            try { Directory.Delete(tmp, true); } catch (IOException) { }
            throw;
        }
        var all = List();
        for (int i = 0; i < all.Count - _keep; i++) Directory.Delete(all[i], true);
        foreach (var stale in Directory.GetDirectories(Root, ".step-*")) try { Directory.Delete(stale, true); } catch (IOException) { }
        return final;
    }
}

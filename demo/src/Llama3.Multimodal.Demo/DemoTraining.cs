namespace Llama3.Multimodal.Demo;

/// <summary>One training run of the demo: a config file over its recipe's defaults, with the demo's auxiliary losses registered.</summary>
public static class DemoTraining
{
    /// <summary>Loads <paramref name="configPath"/> (its <c>recipe</c> names the recipe) with <paramref name="sets"/> and trains into <paramref name="outDir"/>.</summary>
    public static TrainResult Run(string configPath, IEnumerable<string> sets, string outDir, bool resume, CancellationToken ct = default)
    {
        DemoExtensions.Register();
        string recipe = RecipeOf(configPath);
        using var defaults = RecipeRegistry.Create(recipe);
        var cfg = ConfigLoader.Load(defaults.DefaultConfig(), configPath, sets);
        using var trainer = new Trainer(RecipeRegistry.Create(recipe), cfg, outDir, new TrainerOptions());
        return trainer.Run(resume, ct);
    }

    /// <summary>The <c>recipe</c> a config file names.</summary>
    public static string RecipeOf(string configPath)
    {
        if (!File.Exists(configPath)) throw new ConfigException($"{configPath}: config file not found.");
        System.Text.Json.Nodes.JsonNode? node;
        try { node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(configPath), null, new System.Text.Json.JsonDocumentOptions { CommentHandling = System.Text.Json.JsonCommentHandling.Skip, AllowTrailingCommas = true }); }
        catch (System.Text.Json.JsonException e) { throw new ConfigException($"{configPath}: invalid JSON: {e.Message}", e); }
        return node?["recipe"]?.GetValue<string>() is { Length: > 0 } r ? r : throw new ConfigException($"{configPath}: no \"recipe\" key naming the recipe to run.");
    }
}

namespace Llama3.Multimodal.Training;

/// <summary>The recipes <c>mm-train</c> knows, by name. Multimodal recipes register here when their modules exist.</summary>
public static class RecipeRegistry
{
    static readonly Dictionary<string, Func<Recipe>> Factories = new(StringComparer.Ordinal)
    {
        ["text-pretrain"] = () => new TextPretrainRecipe(),
        ["sft"] = () => new SftRecipe(),
        ["dpo"] = () => new DpoRecipe(),
        ["reward-model"] = () => new RewardModelRecipe(),
        ["vision-stage1"] = () => new VisionStage1Recipe(),
        ["vision-stage2"] = () => new VisionStage2Recipe(),
        ["vision-sft"] = () => new VisionSftRecipe(),
        ["vision-reward"] = () => new VisionRewardRecipe(),
        ["vision-dpo"] = () => new VisionDpoRecipe(),
        ["video"] = () => new VideoRecipe(),
        ["speech-stage1"] = () => new SpeechPretrainRecipe(),
        ["speech-stage2"] = () => new SpeechSftRecipe(),
    };

    /// <summary>Registered names, in registration order.</summary>
    public static IReadOnlyList<string> Names => Factories.Keys.ToList();

    /// <summary>Adds (or replaces) a recipe.</summary>
    public static void Register(string name, Func<Recipe> factory) => Factories[name] = factory;

    /// <summary>A fresh instance of recipe <paramref name="name"/> (<c>reward</c> is accepted for <c>reward-model</c>).</summary>
    public static Recipe Create(string name)
    {
        if (name == "reward") name = "reward-model";
        return Factories.TryGetValue(name, out var f) ? f()
            : throw new Text.ConfigException($"unknown recipe '{name}'; known: {string.Join(", ", Factories.Keys)}.");
    }
}

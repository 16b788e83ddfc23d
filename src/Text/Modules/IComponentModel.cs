using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>
/// A model made of named components: the units that training chooses to train or freeze (e.g. the image encoder, the
/// projector, the cross-attention layers and the language model of Llama 3.2 Vision). Each component is a list of
/// module paths, which are also the parameter-name and checkpoint-key prefixes of its weights.
/// </summary>
public interface IComponentModel
{
    /// <summary>
    /// Component name → the module paths it covers. A parameter belongs to a path when its name equals the path or
    /// starts with the path and a dot.
    /// </summary>
    IReadOnlyDictionary<string, IReadOnlyList<string>> Components { get; }
}

/// <summary>Helpers over <see cref="IComponentModel.Components"/>.</summary>
public static class ModelComponents
{
    /// <summary>True when <paramref name="parameterName"/> lies under <paramref name="modulePath"/>.</summary>
    public static bool Covers(string modulePath, string parameterName) =>
        parameterName == modulePath || parameterName.StartsWith(modulePath + ".", StringComparison.Ordinal);

    /// <summary>
    /// The module paths of <paramref name="component"/>; throws <see cref="ArgumentException"/> naming the known
    /// components when the model has no such component.
    /// </summary>
    public static IReadOnlyList<string> PathsOf(IComponentModel model, string component) =>
        model.Components.TryGetValue(component, out var paths) ? paths
            : throw new ArgumentException($"unknown component '{component}'; this model has: {string.Join(", ", model.Components.Keys)}.", nameof(component));

    /// <summary>The parameters of <paramref name="component"/> with their names, in the model's parameter order.</summary>
    public static IReadOnlyList<(string Name, Parameter Parameter)> ParametersOf<TModel>(TModel model, string component)
        where TModel : nn.Module, IComponentModel
    {
        var paths = PathsOf(model, component);
        return model.named_parameters().Where(np => paths.Any(p => Covers(p, np.name))).Select(np => (np.name, np.parameter)).ToList();
    }
}

namespace Llama3.Multimodal.Demo.Tests;

internal static class Registration
{
    /// <summary>The demo's auxiliary losses are registered before any test builds a recipe (as <c>mm-demo</c> does at start).</summary>
    [System.Runtime.CompilerServices.ModuleInitializer]
    internal static void Init() => DemoExtensions.Register();
}

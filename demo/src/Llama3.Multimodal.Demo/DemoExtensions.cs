namespace Llama3.Multimodal.Demo;

/// <summary>Registers the demo's auxiliary losses with the training library (<see cref="AuxiliaryLossRegistry"/>).</summary>
public static class DemoExtensions
{
    /// <summary>Registers <c>glyph</c>, <c>glyph_linear</c> (<see cref="GlyphLoss"/>) and <c>shape</c> (<see cref="ShapeLoss"/>);
    /// safe to call more than once.</summary>
    public static void Register()
    {
        AuxiliaryLossRegistry.Register(GlyphLoss.OutputName, () => new GlyphLoss(linear: false));
        AuxiliaryLossRegistry.Register(GlyphLoss.LinearName, () => new GlyphLoss(linear: true));
        AuxiliaryLossRegistry.Register(ShapeLoss.Name, () => new ShapeLoss());
    }
}

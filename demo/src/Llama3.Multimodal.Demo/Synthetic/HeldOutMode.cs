namespace Llama3.Multimodal.Demo;

/// <summary>How a maker treats its held-out combinations (colour+shape pairs, voices, speeds).</summary>
public enum HeldOutMode
{
    /// <summary>Ignore the held-out list: sample everything.</summary>
    All,
    /// <summary>Training sets: never produce a held-out combination.</summary>
    Exclude,
    /// <summary>Held-out evaluation sets: every item uses a held-out combination.</summary>
    Only,
}

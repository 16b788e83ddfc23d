namespace Llama3.Multimodal.Text;

/// <summary>Checkpoint key-naming conventions.</summary>
public enum CheckpointLayout
{
    /// <summary>Hugging Face: <c>config.json</c> + <c>model.safetensors</c> with <c>model.layers.N…</c> keys.</summary>
    HuggingFace,
    /// <summary>Meta: <c>params.json</c> + safetensors with <c>layers.N.attention.wq…</c> keys and Meta rotary row order.</summary>
    Meta,
}

using System.Text.RegularExpressions;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Text;

/// <summary>
/// Meta (llama reference) ↔ Hugging Face key names for the text decoder, and the rotary permutation of q/k rows:
/// Meta rotates adjacent pairs (2i, 2i+1), HF rotates (i, i + d/2), so each head's rows [r0, r1, r2, r3, …] in Meta order
/// become [r0, r2, …, r1, r3, …] in HF order.
/// </summary>
public static partial class MetaLayout
{
    /// <summary>(Meta, HF) key pairs with <c>{i}</c> for the layer index.</summary>
    public static readonly (string Meta, string Hf)[] KeyMap =
    {
        ("tok_embeddings.weight", "model.embed_tokens.weight"),
        ("norm.weight", "model.norm.weight"),
        ("output.weight", "lm_head.weight"),
        ("layers.{i}.attention.wq.weight", "model.layers.{i}.self_attn.q_proj.weight"),
        ("layers.{i}.attention.wk.weight", "model.layers.{i}.self_attn.k_proj.weight"),
        ("layers.{i}.attention.wv.weight", "model.layers.{i}.self_attn.v_proj.weight"),
        ("layers.{i}.attention.wo.weight", "model.layers.{i}.self_attn.o_proj.weight"),
        ("layers.{i}.feed_forward.w1.weight", "model.layers.{i}.mlp.gate_proj.weight"),
        ("layers.{i}.feed_forward.w3.weight", "model.layers.{i}.mlp.up_proj.weight"),
        ("layers.{i}.feed_forward.w2.weight", "model.layers.{i}.mlp.down_proj.weight"),
        ("layers.{i}.attention_norm.weight", "model.layers.{i}.input_layernorm.weight"),
        ("layers.{i}.ffn_norm.weight", "model.layers.{i}.post_attention_layernorm.weight"),
    };

    static readonly (Regex From, string To)[] MetaToHfRules = KeyMap.Select(p => (Pattern(p.Meta), p.Hf)).ToArray();
    static readonly (Regex From, string To)[] HfToMetaRules = KeyMap.Select(p => (Pattern(p.Hf), p.Meta)).ToArray();

    static Regex Pattern(string template) =>
        new("^" + Regex.Escape(template).Replace(@"\{i}", @"(?<i>\d+)") + "$", RegexOptions.CultureInvariant);

    static string? Map((Regex From, string To)[] rules, string key)
    {
        foreach (var (from, to) in rules)
        {
            var m = from.Match(key);
            if (m.Success) return to.Replace("{i}", m.Groups["i"].Value);
        }
        return null;
    }

    /// <summary>HF key for a Meta key, or null when the key is not part of the text decoder.</summary>
    public static string? MetaToHf(string metaKey) => Map(MetaToHfRules, metaKey);

    /// <summary>Meta key for an HF key, or null.</summary>
    public static string? HfToMeta(string hfKey) => Map(HfToMetaRules, hfKey);

    /// <summary>True for the q/k projection keys whose rows are permuted between the layouts (HF spelling).</summary>
    public static bool IsRotaryProjection(string hfKey) =>
        hfKey.EndsWith(".self_attn.q_proj.weight", StringComparison.Ordinal) || hfKey.EndsWith(".self_attn.k_proj.weight", StringComparison.Ordinal);

    /// <summary>Meta row order → HF row order: view (heads, d/2, 2, in), swap the middle axes.</summary>
    public static Tensor MetaToHfRows(Tensor w, long heads)
    {
        long rows = w.shape[0], cols = w.shape[1], hd = rows / heads;
        return w.view(heads, hd / 2, 2, cols).transpose(1, 2).reshape(rows, cols);
    }

    /// <summary>HF row order → Meta row order (inverse of <see cref="MetaToHfRows"/>).</summary>
    public static Tensor HfToMetaRows(Tensor w, long heads)
    {
        long rows = w.shape[0], cols = w.shape[1], hd = rows / heads;
        return w.view(heads, 2, hd / 2, cols).transpose(1, 2).reshape(rows, cols);
    }
}

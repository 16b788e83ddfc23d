using Llama3.Multimodal.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Llama3.Multimodal.Training;

/// <summary>The post-training losses (Llama 3 §4.1) and the token log-likelihood they are built from.</summary>
public static class PreferenceLosses
{
    static readonly Scalar IgnoreIndex = (-100).ToScalar();

    /// <summary>
    /// The <c>dpo</c> recipes' loss from sequence log-probabilities [2N] (chosen rows, then rejected rows) of the policy and
    /// the reference: the DPO term plus <c>loss.nll_weight</c> × the per-token NLL of the chosen response, with the
    /// <c>dpo</c>, <c>nll_chosen</c> and <c>reward_accuracy</c> metrics. The total is moved to the caller's outer dispose scope.
    /// </summary>
    internal static LossOutput DpoWithNll(Tensor policy, Tensor reference, Tensor labels, int n, LossSection loss)
    {
        var dpo = Dpo(policy[..n], policy[n..], reference[..n], reference[n..], loss.DpoBeta);
        using var nllWeight = loss.NllWeight.ToScalar();
        var chosenTokens = labels[..n].ne(IgnoreIndex).sum(1).clamp_min(Scalars.One).to_type(ScalarType.Float32);
        var nll = -policy[..n] / chosenTokens;                                                                   // per-token NLL of chosen
        var total = dpo.add(nll, nllWeight).sum();
        var margin = (policy[..n] - reference[..n]) - (policy[n..] - reference[n..]);
        var metrics = new Dictionary<string, double>
        {
            ["dpo"] = dpo.sum().item<float>(),
            ["nll_chosen"] = nll.sum().item<float>(),
            ["reward_accuracy"] = margin.gt(Scalars.Zero).sum().item<long>(),
        };
        return new LossOutput(total.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>
    /// DPO per pair: <c>−log σ(β·((π_c − ref_c) − (π_r − ref_r)))</c> from sequence log-probabilities [N]. Equals log 2
    /// when policy and reference agree.
    /// </summary>
    public static Tensor Dpo(Tensor policyChosen, Tensor policyRejected, Tensor refChosen, Tensor refRejected, double beta)
    {
        using var scope = NewDisposeScope();
        using var b = beta.ToScalar();
        var z = ((policyChosen - refChosen) - (policyRejected - refRejected)).mul(b);
        return (-nn.functional.logsigmoid(z)).MoveToOuterDisposeScope();
    }

    /// <summary>Pairwise ranking loss of a reward model, no margin: <c>−log σ(r_better − r_worse)</c> per pair [N].</summary>
    public static Tensor PairwiseRanking(Tensor better, Tensor worse)
    {
        using var scope = NewDisposeScope();
        return (-nn.functional.logsigmoid(better - worse)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The reward model's ranking loss over rewards laid out as [chosen (n); rejected (n); edited (E)], edited response e
    /// belonging to pair <c>editedOf[e]</c>: Σ −log σ(r_c − r_r), plus, for each edited response, the terms ranking it above
    /// its pair's chosen and rejected ones (edited &gt; chosen &gt; rejected, Llama 3 §4.1.2). Also returns how many pairs
    /// rank chosen above rejected.
    /// </summary>
    internal static (Tensor Total, long Correct) Ranking(Tensor rewards, int pairs, Tensor editedOf)
    {
        using var scope = NewDisposeScope();
        editedOf = editedOf.to(rewards.device);
        int n = pairs;
        var rc = rewards[..n]; var rr = rewards[n..(2 * n)];
        var total = PairwiseRanking(rc, rr).sum();
        if (editedOf.numel() > 0)
        {
            var re = rewards[(2 * n)..];
            total = Scalars.Add(total, PairwiseRanking(re, rc.index_select(0, editedOf)).sum());
            total = Scalars.Add(total, PairwiseRanking(re, rr.index_select(0, editedOf)).sum());
        }
        return (total.MoveToOuterDisposeScope(), rc.gt(rr).sum().item<long>());
    }

    /// <summary>Per-token log-probabilities of <paramref name="labels"/> [B, T] under <paramref name="logits"/> [B, T, V]; 0 where the label is −100.</summary>
    public static Tensor TokenLogProbs(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        labels = labels.to(logits.device);   // the output head may sit on another device than the inputs (layer placement)
        var mask = labels.ne(IgnoreIndex);
        var safe = labels.masked_fill(mask.logical_not(), Scalars.Zero);
        var lp = logits.to_type(ScalarType.Float32).log_softmax(-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1);
        return lp.masked_fill(mask.logical_not(), Scalars.Zero).MoveToOuterDisposeScope();
    }

    /// <summary>Σ of the next-token cross-entropy over labelled positions (label −100 = ignored).</summary>
    public static Tensor CrossEntropySum(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        long v = logits.shape[^1];
        labels = labels.to(logits.device);   // the output head may sit on another device than the inputs (layer placement)
        return nn.functional.cross_entropy(logits.reshape(-1, v), labels.reshape(-1), ignore_index: -100, reduction: nn.Reduction.Sum).MoveToOuterDisposeScope();
    }

    /// <summary>Labels for next-token prediction: <c>labels[t] = ids[t+1]</c> where <c>train[t+1]</c>, else −100.</summary>
    internal static long[] ShiftedLabels(IReadOnlyList<int> ids, IReadOnlyList<bool> train, int len)
    {
        var labels = new long[len];
        for (int t = 0; t < len; t++) labels[t] = t + 1 < ids.Count && t + 1 < len && train[t + 1] ? ids[t + 1] : -100;
        return labels;
    }
}

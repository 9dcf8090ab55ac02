namespace MoeModal.Core.Routing;

/// <summary>How gate logits become expert weights.</summary>
public enum GatingPolicy
{
    /// <summary>p = softmax(logits), keep the k largest (V-MoE, Switch).</summary>
    TopKSoftmaxFirst,

    /// <summary>Keep the k largest logits, weights = softmax over those k (Shazeer, Mixtral, GeRM).</summary>
    TopKTopKFirst,

    /// <summary>Every expert runs, weights = softmax(logits) (BA-MoE adapters, LoRA-MoE).</summary>
    Dense,
}

/// <summary>What one capacity budget covers.</summary>
public enum RoutingGroup
{
    /// <summary>Every index of axis 0 (an image, an utterance, a robot) has its own budget.</summary>
    Item,

    /// <summary>The whole call shares one budget.</summary>
    Batch,
}

/// <summary>An immutable routing policy, as named in a manifest (see docs/model-package.md).</summary>
public sealed record RoutingOptions
{
    public GatingPolicy Policy { get; init; } = GatingPolicy.TopKSoftmaxFirst;

    /// <summary>Experts per token (ignored by <see cref="GatingPolicy.Dense"/>).</summary>
    public int K { get; init; } = 2;

    /// <summary>Divide kept weights by their sum (softmax-first only).</summary>
    public bool Renormalize { get; init; }

    /// <summary><c>C = ceil(k·N·factor/E)</c> per expert per group; ≤ 0 means dropless.</summary>
    public double CapacityFactor { get; init; }

    /// <summary>Batch Prioritized Routing when capacity applies.</summary>
    public bool BatchPrioritized { get; init; } = true;

    public RoutingGroup Group { get; init; } = RoutingGroup.Item;

    public bool Dropless => CapacityFactor <= 0 || Policy == GatingPolicy.Dense;

    /// <summary>Experts each token is assigned to, given <paramref name="experts"/> experts.</summary>
    public int EffectiveK(int experts) => Policy == GatingPolicy.Dense ? experts : K;

    /// <summary>Capacity per expert for a group of <paramref name="groupTokens"/> tokens; int.MaxValue when dropless.</summary>
    public int Capacity(int groupTokens, int experts)
    {
        if (Dropless) return int.MaxValue;
        // Same order of operations as the recipes (k * N * factor / E) so both round alike.
        double c = Math.Ceiling(EffectiveK(experts) * (double)groupTokens * CapacityFactor / experts);
        return c >= int.MaxValue ? int.MaxValue : (int)c;
    }

    public static string PolicyName(GatingPolicy p) => p switch
    {
        GatingPolicy.TopKSoftmaxFirst => "topk_softmax_first",
        GatingPolicy.TopKTopKFirst => "topk_topk_first",
        GatingPolicy.Dense => "dense",
        _ => p.ToString(),
    };

    public static bool TryParsePolicy(string name, out GatingPolicy policy)
    {
        switch (name)
        {
            case "topk_softmax_first": policy = GatingPolicy.TopKSoftmaxFirst; return true;
            case "topk_topk_first": policy = GatingPolicy.TopKTopKFirst; return true;
            case "dense": policy = GatingPolicy.Dense; return true;
            default: policy = default; return false;
        }
    }

    /// <summary>Checks the options against a step with <paramref name="experts"/> experts; returns an error or null.</summary>
    public string? Validate(int experts)
    {
        if (experts < 1) return "a moe step needs at least one expert";
        if (Policy != GatingPolicy.Dense && (K < 1 || K > experts))
            return $"routing.k = {K} must be between 1 and the number of experts ({experts})";
        if (!double.IsFinite(CapacityFactor)) return "routing.capacity_factor must be finite";
        return null;
    }

    public override string ToString() =>
        $"{PolicyName(Policy)} k={EffectiveK(int.MaxValue)} renormalize={(Renormalize ? "true" : "false")} capacity_factor={CapacityFactor} bpr={(BatchPrioritized ? "true" : "false")} group={Group.ToString().ToLowerInvariant()}";
}

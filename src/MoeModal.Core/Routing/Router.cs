namespace MoeModal.Core.Routing;

/// <summary>
/// The one routing engine shared by every modality: gate logits [N, E] → a <see cref="RoutingPlan"/>.
/// Pure computation; it never touches tensors' owners or sessions.
/// </summary>
public static class Router
{
    /// <summary>
    /// Routes <paramref name="tokens"/> tokens. <paramref name="groupSize"/> tokens form one capacity
    /// group (tokens must be a multiple of it). Throws <see cref="RoutingException"/> for a row
    /// holding NaN or ±infinity, naming <paramref name="step"/> and the token.
    /// </summary>
    public static void Route(ReadOnlySpan<float> logits, int tokens, int experts, int groupSize,
        RoutingOptions options, RoutingPlan plan, string step = "moe")
    {
        if (experts < 1) throw new ArgumentOutOfRangeException(nameof(experts));
        if (logits.Length != (long)tokens * experts)
            throw new ArgumentException($"step '{step}': gate logits hold {logits.Length} values, expected {tokens}×{experts}");
        if (groupSize < 1 || tokens % groupSize != 0)
            throw new ArgumentException($"step '{step}': {tokens} tokens do not split into groups of {groupSize}");
        string? err = options.Validate(experts);
        if (err is not null) throw new ArgumentException($"step '{step}': {err}");

        int k = options.EffectiveK(experts);
        plan.Reset(tokens, experts, k);
        var choiceExpert = plan.ChoiceExpert;
        var choiceWeight = plan.ChoiceWeight;

        Span<float> probs = experts <= 512 ? stackalloc float[experts] : new float[experts];
        Span<bool> taken = experts <= 512 ? stackalloc bool[experts] : new bool[experts];
        for (int t = 0; t < tokens; t++)
        {
            var row = logits.Slice(t * experts, experts);
            for (int e = 0; e < experts; e++)
                if (!float.IsFinite(row[e]))
                    throw new RoutingException(
                        $"step '{step}': gate logits of token {t} hold {row[e]} (expert {e}); refusing to route a non-finite row");
            SelectToken(row, k, options, probs, taken, choiceExpert.Slice(t * k, k), choiceWeight.Slice(t * k, k));
        }

        ApplyCapacity(plan, groupSize, options);
        plan.BuildExpertLists();
    }

    /// <summary>Top-k (ties → lower expert index) and weights for one token.</summary>
    private static void SelectToken(ReadOnlySpan<float> row, int k, RoutingOptions o,
        Span<float> probs, Span<bool> taken, Span<int> outExpert, Span<float> outWeight)
    {
        int experts = row.Length;
        taken.Clear();
        for (int r = 0; r < k; r++)
        {
            int best = -1;
            for (int e = 0; e < experts; e++)
                if (!taken[e] && (best < 0 || row[e] > row[best])) best = e;
            taken[best] = true;
            outExpert[r] = best;
        }

        if (o.Policy == GatingPolicy.TopKTopKFirst)
        {
            float max = row[outExpert[0]];
            double sum = 0;
            for (int r = 0; r < k; r++) sum += outWeight[r] = MathF.Exp(row[outExpert[r]] - max);
            for (int r = 0; r < k; r++) outWeight[r] = (float)(outWeight[r] / sum);
            return;
        }

        // Softmax over all experts (softmax-first and dense).
        float m = row[outExpert[0]];
        double total = 0;
        for (int e = 0; e < experts; e++) total += probs[e] = MathF.Exp(row[e] - m);
        double kept = 0;
        for (int r = 0; r < k; r++) kept += outWeight[r] = (float)(probs[outExpert[r]] / total);
        if (o.Renormalize && o.Policy == GatingPolicy.TopKSoftmaxFirst)
            for (int r = 0; r < k; r++) outWeight[r] = (float)(outWeight[r] / kept);
    }

    /// <summary>
    /// Marks assignments kept or dropped. Per group, rank by rank (all first choices, then all
    /// second choices…); within a rank, token order, or with BPR the higher top-1 weight first.
    /// </summary>
    private static void ApplyCapacity(RoutingPlan plan, int groupSize, RoutingOptions o)
    {
        var kept = plan.Kept;
        int experts = plan.Experts, k = plan.K, tokens = plan.Tokens;
        int capacity = o.Capacity(groupSize, experts);
        plan.Capacity = capacity;
        if (capacity == int.MaxValue)
        {
            kept.Fill(true);
            return;
        }

        var choiceExpert = plan.ChoiceExpert;
        Span<int> fill = experts <= 512 ? stackalloc int[experts] : new int[experts];
        int[] order = System.Buffers.ArrayPool<int>.Shared.Rent(groupSize);
        var priority = new PriorityComparer(plan.WeightBuffer, k);
        int dropped = 0;
        for (int g0 = 0; g0 < tokens; g0 += groupSize)
        {
            fill.Clear();
            var groupOrder = order.AsSpan(0, groupSize);
            for (int i = 0; i < groupSize; i++) groupOrder[i] = g0 + i;
            if (o.BatchPrioritized) groupOrder.Sort(priority);
            for (int r = 0; r < k; r++)
            {
                foreach (int t in groupOrder)
                {
                    int i = t * k + r;
                    int e = choiceExpert[i];
                    if (fill[e] < capacity) { fill[e]++; kept[i] = true; }
                    else { kept[i] = false; dropped++; }
                }
            }
        }
        System.Buffers.ArrayPool<int>.Shared.Return(order);
        plan.Dropped = dropped;
    }

    /// <summary>Higher top-1 weight first; equal weights keep token order (a total order, so sorting is deterministic).</summary>
    private readonly struct PriorityComparer(float[] weights, int k) : IComparer<int>
    {
        public int Compare(int a, int b)
        {
            int c = weights[b * k].CompareTo(weights[a * k]);
            return c != 0 ? c : a.CompareTo(b);
        }
    }
}

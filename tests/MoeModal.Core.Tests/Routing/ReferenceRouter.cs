using MoeModal.Core.Routing;

namespace MoeModal.Core.Tests.Routing;

/// <summary>
/// A deliberately naive, independent statement of the routing rules (LINQ, doubles, sorting by
/// tuples), used to check the engine on random inputs.
/// </summary>
internal static class ReferenceRouter
{
    public sealed record Choice(int Token, int Rank, int Expert, double Weight, bool Kept);

    public static List<Choice> Route(float[] logits, int n, int e, int groupSize, RoutingOptions o)
    {
        int k = o.Policy == GatingPolicy.Dense ? e : o.K;
        var choices = new List<Choice>();
        for (int t = 0; t < n; t++)
        {
            var row = Enumerable.Range(0, e).Select(j => (double)logits[t * e + j]).ToArray();
            var ranked = Enumerable.Range(0, e).OrderByDescending(j => row[j]).ThenBy(j => j).Take(k).ToArray();
            double[] w;
            if (o.Policy == GatingPolicy.TopKTopKFirst)
            {
                var ex = ranked.Select(j => Math.Exp(row[j] - row[ranked[0]])).ToArray();
                w = ex.Select(x => x / ex.Sum()).ToArray();
            }
            else
            {
                double max = row.Max();
                var p = row.Select(x => Math.Exp(x - max)).ToArray();
                double s = p.Sum();
                w = ranked.Select(j => p[j] / s).ToArray();
                if (o.Renormalize && o.Policy == GatingPolicy.TopKSoftmaxFirst)
                {
                    double ws = w.Sum();
                    w = w.Select(x => x / ws).ToArray();
                }
            }
            for (int r = 0; r < k; r++) choices.Add(new Choice(t, r, ranked[r], w[r], true));
        }
        if (o.CapacityFactor <= 0 || o.Policy == GatingPolicy.Dense) return choices;

        int cap = (int)Math.Ceiling(k * (double)groupSize * o.CapacityFactor / e);
        var result = new List<Choice>(choices);
        for (int g0 = 0; g0 < n; g0 += groupSize)
        {
            var fill = new int[e];
            var group = choices.Where(c => c.Token >= g0 && c.Token < g0 + groupSize).ToList();
            var priority = group.Where(c => c.Rank == 0).ToDictionary(c => c.Token, c => c.Weight);
            var order = group.OrderBy(c => c.Rank)
                .ThenBy(c => o.BatchPrioritized ? -priority[c.Token] : 0)
                .ThenBy(c => c.Token);
            foreach (var c in order)
            {
                bool kept = fill[c.Expert] < cap;
                if (kept) fill[c.Expert]++;
                result[c.Token * k + c.Rank] = c with { Kept = kept };
            }
        }
        return result;
    }
}

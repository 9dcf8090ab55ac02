using MoeModal.Core.Routing;

namespace MoeModal.Core.Tests.Routing;

public class RouterTests
{
    private static RoutingPlan Route(float[] logits, int n, int e, RoutingOptions o, int? group = null)
    {
        var plan = new RoutingPlan();
        Router.Route(logits, n, e, group ?? n, o, plan);
        return plan;
    }

    private static double[] Softmax(params float[] x)
    {
        double m = x.Max();
        var ex = x.Select(v => Math.Exp(v - m)).ToArray();
        return ex.Select(v => v / ex.Sum()).ToArray();
    }

    [Fact]
    public void Route_SoftmaxFirst_KeepsTopKProbabilitiesWithoutRenormalizing()
    {
        float[] logits = [0.1f, 2.0f, -1.0f, 1.5f];
        var plan = Route(logits, 1, 4, new RoutingOptions { Policy = GatingPolicy.TopKSoftmaxFirst, K = 2 });
        var p = Softmax(logits);
        Assert.Equal([1, 3], plan.ChoiceExpert.ToArray());
        Assert.Equal(p[1], plan.ChoiceWeight[0], 6);
        Assert.Equal(p[3], plan.ChoiceWeight[1], 6);
        Assert.True(plan.ChoiceWeight[0] + plan.ChoiceWeight[1] < 0.99f);
    }

    [Fact]
    public void Route_SoftmaxFirstRenormalized_WeightsSumToOne()
    {
        float[] logits = [0.1f, 2.0f, -1.0f, 1.5f];
        var plan = Route(logits, 1, 4, new RoutingOptions { K = 2, Renormalize = true });
        var p = Softmax(logits);
        Assert.Equal(p[1] / (p[1] + p[3]), plan.ChoiceWeight[0], 6);
        Assert.Equal(1.0, plan.ChoiceWeight[0] + plan.ChoiceWeight[1], 6);
    }

    [Fact]
    public void Route_TopKFirst_SoftmaxOverKeptLogitsOnly()
    {
        float[] logits = [0.1f, 2.0f, -1.0f, 1.5f];
        var plan = Route(logits, 1, 4, new RoutingOptions { Policy = GatingPolicy.TopKTopKFirst, K = 2 });
        var p = Softmax(2.0f, 1.5f);
        Assert.Equal([1, 3], plan.ChoiceExpert.ToArray());
        Assert.Equal(p[0], plan.ChoiceWeight[0], 6);
        Assert.Equal(p[1], plan.ChoiceWeight[1], 6);
    }

    [Fact]
    public void Route_Dense_EveryExpertWithSoftmaxWeights()
    {
        float[] logits = [0.5f, -0.5f, 3f];
        var plan = Route(logits, 1, 3, new RoutingOptions { Policy = GatingPolicy.Dense, CapacityFactor = 0.1 });
        Assert.Equal(3, plan.K);
        Assert.Equal([2, 0, 1], plan.ChoiceExpert.ToArray());
        Assert.Equal(1.0, plan.ChoiceWeight.ToArray().Sum(), 5);
        Assert.Equal(0, plan.Dropped); // capacity never applies to dense gating
        Assert.Equal([1, 1, 1], plan.TokensPerExpert.ToArray());
    }

    [Fact]
    public void Route_TiesGoToLowerExpertIndex()
    {
        float[] logits = [1f, 3f, 3f, 3f];
        var plan = Route(logits, 1, 4, new RoutingOptions { K = 2 });
        Assert.Equal([1, 2], plan.ChoiceExpert.ToArray());
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public void Route_NonFiniteRow_ThrowsNamingStepAndToken(float bad)
    {
        float[] logits = [0, 1, 2, 3, 0, bad, 2, 3];
        var ex = Assert.Throws<RoutingException>(() =>
            Router.Route(logits, 2, 4, 2, new RoutingOptions { K = 2 }, new RoutingPlan(), "moe7"));
        Assert.Contains("moe7", ex.Message);
        Assert.Contains("token 1", ex.Message);
    }

    [Fact]
    public void Route_AllNaNRow_Throws()
    {
        float[] logits = [float.NaN, float.NaN];
        Assert.Throws<RoutingException>(() => Route(logits, 1, 2, new RoutingOptions { K = 1 }));
    }

    [Theory]
    [InlineData(2, 49, 1.0, 8, 13)]
    [InlineData(2, 64, 1.0, 8, 16)]
    [InlineData(1, 10, 1.25, 4, 4)]
    [InlineData(2, 49, 0.0, 8, int.MaxValue)]
    [InlineData(2, 49, -1.0, 8, int.MaxValue)]
    public void Capacity_IsCeilOfKNFactorOverE(int k, int n, double cf, int e, int expected)
    {
        Assert.Equal(expected, new RoutingOptions { K = k, CapacityFactor = cf }.Capacity(n, e));
    }

    [Fact]
    public void Route_CapacityWithoutBpr_TokenOrderDecides()
    {
        // 4 tokens all prefer expert 0; capacity = ceil(1·4·0.5/2) = 1.
        float[] logits = [1f, 0f, 3f, 0f, 2f, 0f, 5f, 0f];
        var plan = Route(logits, 4, 2, new RoutingOptions { K = 1, CapacityFactor = 0.5, BatchPrioritized = false });
        Assert.Equal(1, plan.Capacity);
        Assert.Equal([true, false, false, false], plan.Kept.ToArray());
        Assert.Equal(3, plan.Dropped);
        Assert.Equal([0], plan.TokensOf(0).ToArray());
    }

    [Fact]
    public void Route_Bpr_HighestTopWeightFirst()
    {
        float[] logits = [1f, 0f, 3f, 0f, 2f, 0f, 5f, 0f];
        var plan = Route(logits, 4, 2, new RoutingOptions { K = 1, CapacityFactor = 0.5, BatchPrioritized = true });
        Assert.Equal([false, false, false, true], plan.Kept.ToArray());
        Assert.Equal([3], plan.TokensOf(0).ToArray());
    }

    [Fact]
    public void Route_FirstChoicesFillBuffersBeforeSecondChoices()
    {
        // Token 0: experts (0, 1); token 1: experts (1, 0). k = 2, E = 2, N = 2, cf = 0.5 → C = 1.
        // Rank-major: token 0's first choice takes expert 0, token 1's first choice takes expert 1,
        // so both second choices are dropped, whatever the token order.
        float[] logits = [2f, 1f, 1f, 2f];
        var plan = Route(logits, 2, 2, new RoutingOptions { K = 2, CapacityFactor = 0.5, BatchPrioritized = false });
        Assert.Equal([true, false, true, false], plan.Kept.ToArray());
    }

    [Fact]
    public void Route_ItemGroups_HaveTheirOwnCapacity()
    {
        // Two items of two tokens, all tokens prefer expert 0; C per item = ceil(1·2·0.5/2) = 1.
        float[] logits = [1f, 0f, 2f, 0f, 3f, 0f, 4f, 0f];
        var o = new RoutingOptions { K = 1, CapacityFactor = 0.5, BatchPrioritized = false };
        var perItem = Route(logits, 4, 2, o, group: 2);
        Assert.Equal([true, false, true, false], perItem.Kept.ToArray());
        var perBatch = Route(logits, 4, 2, o with { CapacityFactor = 0.25 }, group: 4);
        Assert.Equal([true, false, false, false], perBatch.Kept.ToArray());
    }

    [Fact]
    public void Route_ExpertListsAreAscendingAndCarryWeights()
    {
        var rng = new Random(3);
        var logits = Enumerable.Range(0, 50 * 6).Select(_ => (float)rng.NextDouble()).ToArray();
        var plan = Route(logits, 50, 6, new RoutingOptions { K = 2 });
        int total = 0;
        for (int e = 0; e < 6; e++)
        {
            var toks = plan.TokensOf(e).ToArray();
            Assert.Equal(toks.OrderBy(t => t), toks);
            Assert.Equal(plan.TokensPerExpert[e], toks.Length);
            for (int j = 0; j < toks.Length; j++)
            {
                int t = toks[j];
                int r = plan.ChoiceExpert[t * 2] == e ? 0 : 1;
                Assert.Equal(e, plan.ChoiceExpert[t * 2 + r]);
                Assert.Equal(plan.ChoiceWeight[t * 2 + r], plan.WeightsOf(e)[j]);
            }
            total += toks.Length;
        }
        Assert.Equal(100, total);
    }

    [Fact]
    public void Route_ExpertWithNoTokens_HasEmptyList()
    {
        float[] logits = [5f, 4f, 0f, 5f, 4f, 0f];
        var plan = Route(logits, 2, 3, new RoutingOptions { K = 2 });
        Assert.Equal(0, plan.TokensPerExpert[2]);
        Assert.True(plan.TokensOf(2).IsEmpty);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    public void Route_InvalidK_Throws(int k)
    {
        Assert.Throws<ArgumentException>(() => Route([1f, 2f, 3f, 4f], 1, 4, new RoutingOptions { K = k }));
    }

    [Fact]
    public void Route_TokensNotMultipleOfGroup_Throws()
    {
        Assert.Throws<ArgumentException>(() => Route(new float[12], 3, 4, new RoutingOptions { K = 1 }, group: 2));
    }

    [Fact]
    public void Route_ReusedPlan_GivesSameResultAsFreshPlan()
    {
        var rng = new Random(11);
        var plan = new RoutingPlan();
        var o = new RoutingOptions { K = 2, CapacityFactor = 1.0 };
        var big = Enumerable.Range(0, 64 * 8).Select(_ => (float)rng.NextDouble()).ToArray();
        Router.Route(big, 64, 8, 16, o, plan);
        var small = Enumerable.Range(0, 8 * 8).Select(_ => (float)rng.NextDouble()).ToArray();
        Router.Route(small, 8, 8, 8, o, plan);
        var fresh = Route(small, 8, 8, o, group: 8);
        Assert.Equal(fresh.ChoiceExpert.ToArray(), plan.ChoiceExpert.ToArray());
        Assert.Equal(fresh.Kept.ToArray(), plan.Kept.ToArray());
        Assert.Equal(fresh.TokensPerExpert.ToArray(), plan.TokensPerExpert.ToArray());
    }

    public static IEnumerable<object[]> RandomCases()
    {
        foreach (var policy in new[] { GatingPolicy.TopKSoftmaxFirst, GatingPolicy.TopKTopKFirst, GatingPolicy.Dense })
            foreach (var cf in new[] { 0.0, 0.5, 1.0, 1.25 })
                foreach (var bpr in new[] { false, true })
                    yield return [policy, cf, bpr];
    }

    [Theory]
    [MemberData(nameof(RandomCases))]
    public void Route_RandomInputs_MatchNaiveReference(GatingPolicy policy, double cf, bool bpr)
    {
        var rng = new Random(HashCode.Combine(policy, cf, bpr) & 0x7fffffff);
        for (int trial = 0; trial < 20; trial++)
        {
            int e = rng.Next(1, 9), groups = rng.Next(1, 4), groupSize = rng.Next(1, 20);
            int n = groups * groupSize, k = rng.Next(1, e + 1);
            // Coarse values create ties between experts on purpose; a distinct scale per token keeps
            // top-1 weights of different tokens apart, so BPR order does not hinge on rounding.
            var logits = Enumerable.Range(0, n * e)
                .Select(i => (float)(Math.Round(rng.NextDouble() * 4 - 2, 1) * (1 + 0.0137 * (i / e)))).ToArray();
            var o = new RoutingOptions { Policy = policy, K = k, CapacityFactor = cf, BatchPrioritized = bpr, Renormalize = rng.Next(2) == 0 && policy == GatingPolicy.TopKSoftmaxFirst };
            var plan = new RoutingPlan();
            Router.Route(logits, n, e, groupSize, o, plan);
            var expected = ReferenceRouter.Route(logits, n, e, groupSize, o);
            Assert.Equal(expected.Count, plan.ChoiceExpert.Length);
            for (int i = 0; i < expected.Count; i++)
            {
                Assert.Equal(expected[i].Expert, plan.ChoiceExpert[i]);
                Assert.Equal(expected[i].Weight, plan.ChoiceWeight[i], 1e-6);
                Assert.Equal(expected[i].Kept, plan.Kept[i]);
            }
            Assert.Equal(expected.Count(c => !c.Kept), plan.Dropped);
        }
    }
}

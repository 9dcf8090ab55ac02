using MoeModal.Abstractions;
using MoeModal.Core.Execution;
using MoeModal.Core.Routing;
using MoeModal.Core.Tests.Routing;
using MoeModal.Testing;

namespace MoeModal.Core.Tests.Execution;

/// <summary>Real ONNX Runtime sessions over packages written by code, checked against the routing math.</summary>
public class MoeModelRunTests
{
    private static Tensor RandomInput(int b, int t, int d, int seed)
    {
        var rng = new Random(seed);
        return Tensor.FromFloats(Enumerable.Range(0, b * t * d).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray(), b, t, d);
    }

    /// <summary>out = x + Σ kept w·(e+1)·x, computed from the reference router on x·G.</summary>
    private static float[] Expected(TestPackage p, Tensor x, RoutingOptions o, int groupSize)
    {
        var xs = x.Floats!;
        int d = p.D, e = p.Experts, n = xs.Length / d;
        var logits = new float[n * e];
        for (int t = 0; t < n; t++)
            for (int j = 0; j < e; j++)
            {
                float s = 0;
                for (int i = 0; i < d; i++) s += xs[t * d + i] * p.Gate[i * e + j];
                logits[t * e + j] = s;
            }
        var choices = ReferenceRouter.Route(logits, n, e, groupSize, o);
        var y = (float[])xs.Clone();
        foreach (var c in choices.Where(c => c.Kept))
            for (int i = 0; i < d; i++) y[c.Token * d + i] += (float)(c.Weight * (c.Expert + 1) * xs[c.Token * d + i]);
        return y;
    }

    [Theory]
    [InlineData("topk_softmax_first", 2, 0.0)]
    [InlineData("topk_softmax_first", 1, 1.0)]
    [InlineData("topk_topk_first", 2, 1.25)]
    [InlineData("dense", 0, 0.0)]
    public void Run_MatchesRoutingMath(string policy, int k, double cf)
    {
        using var p = new TestPackage(d: 4, experts: 4, policy: policy, k: policy == "dense" ? 2 : k, capacityFactor: cf);
        if (policy == "dense") p.Routing.Remove("k");
        p.WriteManifest();
        using var model = MoeModel.Load(p.Dir);
        var x = RandomInput(3, 7, 4, 42);
        var result = model.Run(new Dictionary<string, Tensor> { ["x"] = x });
        var o = model.MoeSteps.Single().Routing;
        var expected = Expected(p, x, o, 7);
        var actual = result.Tensors["out"].Floats!;
        Assert.Equal(new[] { 3, 7, 4 }, result.Tensors["out"].Shape);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 1e-5);
        var trace = Assert.Single(result.Routing);
        Assert.Equal(21, trace.Tokens);
        Assert.Equal(21 * trace.K, trace.TokensPerExpert.Sum() + trace.DroppedAssignments);
    }

    [Fact]
    public void Run_DroppedToken_PassesThroughResidualUnchanged()
    {
        // Every token prefers expert 0; capacity 1 per item keeps one token, the rest pass through.
        var gate = new float[4 * 2];
        for (int i = 0; i < 4; i++) gate[i * 2] = 1f;
        using var p = new TestPackage(d: 4, experts: 2, gate: gate, k: 1, capacityFactor: 0.4, bpr: false);
        using var model = MoeModel.Load(p.Dir);
        var x = Tensor.FromFloats(Enumerable.Repeat(1f, 5 * 4).ToArray(), 1, 5, 4);
        var result = model.Run(new Dictionary<string, Tensor> { ["x"] = x }, new RunRequest { TraceTokens = true });
        var y = result.Tensors["out"].Floats!;
        var trace = result.Routing[0];
        Assert.Equal(4, trace.DroppedAssignments);                         // C = ceil(1·5·0.4/2) = 1
        Assert.True(trace.Assignments!.Kept[0]);
        Assert.True(y[0] > 1f);                                            // token 0 went to expert 0
        Assert.All(y.Skip(4), v => Assert.Equal(1f, v));                  // the others are unchanged
    }

    [Fact]
    public void Run_OnlyRoutedExpertsRun()
    {
        // Expert 3 is broken (it would fail at run time) but the gate never picks it.
        var gate = new float[4 * 4];
        for (int i = 0; i < 4; i++) { gate[i * 4 + 0] = 2f; gate[i * 4 + 1] = 1f; gate[i * 4 + 3] = -5f; }
        using var p = new TestPackage(d: 4, experts: 4, gate: gate, k: 2);
        new OnnxBuilder()
            .Input("x", OnnxBuilder.Float, "n", 4).Output("y", OnnxBuilder.Float, "n", 4)
            .InitializerInt64("odd", [-1, 7], 2).InitializerInt64("back", [-1, 4], 2)
            .Node("Reshape", ["x", "odd"], ["r"])            // fails unless 4n is a multiple of 7 (n ≤ 6 here)
            .Node("Reshape", ["r", "back"], ["y"])
            .Save(p.PathOf("moe/expert3.onnx"));
        using var model = MoeModel.Load(p.Dir);
        var x = Tensor.FromFloats(Enumerable.Repeat(0.5f, 2 * 3 * 4).ToArray(), 2, 3, 4);
        var result = model.Run(new Dictionary<string, Tensor> { ["x"] = x });
        Assert.Equal(0, result.Routing[0].TokensPerExpert[3]);
        Assert.Equal(0, result.Routing[0].TokensPerExpert[2]);
        Assert.Equal(6, result.Routing[0].TokensPerExpert[0]);
    }

    [Fact]
    public void Run_NaNInput_RefusedAndModelKeepsServing()
    {
        using var p = new TestPackage();
        using var model = MoeModel.Load(p.Dir);
        var bad = RandomInput(1, 3, 4, 1);
        bad.Floats![5] = float.NaN;
        var ex = Assert.Throws<RoutingException>(() => model.Run(new Dictionary<string, Tensor> { ["x"] = bad }));
        Assert.Contains("token 1", ex.Message);
        var ok = model.Run(new Dictionary<string, Tensor> { ["x"] = RandomInput(1, 3, 4, 2) });
        Assert.True(ok.Tensors["out"].Floats!.All(float.IsFinite));
    }

    [Theory]
    [InlineData(new[] { 1, 3, 5 })]
    [InlineData(new[] { 12 })]
    public void Run_WrongInputShape_InputException(int[] shape)
    {
        using var p = new TestPackage();
        using var model = MoeModel.Load(p.Dir);
        var data = new float[shape.Aggregate(1, (a, b) => a * b)];
        var ex = Assert.Throws<InputException>(() => model.Run(new Dictionary<string, Tensor> { ["x"] = Tensor.FromFloats(data, shape) }));
        Assert.Contains("'x'", ex.Message);
    }

    [Fact]
    public void Run_WrongInputType_MissingOrExtraInput_InputException()
    {
        using var p = new TestPackage();
        using var model = MoeModel.Load(p.Dir);
        Assert.Throws<InputException>(() => model.Run(new Dictionary<string, Tensor> { ["x"] = Tensor.FromInt64s(new long[8], 1, 2, 4) }));
        Assert.Throws<InputException>(() => model.Run(new Dictionary<string, Tensor>()));
        Assert.Throws<InputException>(() => model.Run(new Dictionary<string, Tensor> { ["x"] = RandomInput(1, 2, 4, 0), ["extra"] = RandomInput(1, 2, 4, 0) }));
    }

    [Fact]
    public void Run_EmptyBatch_GivesEmptyOutput()
    {
        using var p = new TestPackage();
        using var model = MoeModel.Load(p.Dir);
        var result = model.Run(new Dictionary<string, Tensor> { ["x"] = Tensor.FromFloats([], 0, 3, 4) });
        Assert.Equal(0, result.Tensors["out"].Length);
    }

    [Fact]
    public void Run_ConcurrentCallers_GetTheSameAnswersAsSequential()
    {
        using var p = new TestPackage(d: 8, experts: 6, capacityFactor: 1.0);
        using var model = MoeModel.Load(p.Dir);
        var inputs = Enumerable.Range(0, 16).Select(i => RandomInput(2, 9, 8, i)).ToArray();
        var sequential = inputs.Select(x => model.Run(new Dictionary<string, Tensor> { ["x"] = x }).Tensors["out"].Floats!).ToArray();
        var parallel = new float[inputs.Length][];
        Parallel.For(0, inputs.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 },
            i => parallel[i] = model.Run(new Dictionary<string, Tensor> { ["x"] = inputs[i] }).Tensors["out"].Floats!);
        for (int i = 0; i < inputs.Length; i++) Assert.Equal(sequential[i], parallel[i]);
    }

    [Fact]
    public void Run_ItemGrouping_ResultOfAnItemDoesNotDependOnTheBatch()
    {
        using var p = new TestPackage(d: 4, experts: 4, k: 2, capacityFactor: 0.5, group: "item");
        using var model = MoeModel.Load(p.Dir);
        var a = RandomInput(1, 8, 4, 5);
        var b = RandomInput(1, 8, 4, 6);
        var both = Tensor.FromFloats([.. a.Floats!, .. b.Floats!], 2, 8, 4);
        var alone = model.Run(new Dictionary<string, Tensor> { ["x"] = a }).Tensors["out"].Floats!;
        var batched = model.Run(new Dictionary<string, Tensor> { ["x"] = both }).Tensors["out"].Floats!;
        for (int i = 0; i < alone.Length; i++) Assert.Equal(alone[i], batched[i], 1e-6);
    }

    [Fact]
    public void Load_Overrides_KAndCapacityFactor()
    {
        using var p = new TestPackage(experts: 4, k: 2);
        using var model = MoeModel.Load(p.Dir, new LoadOptions { TopK = 1, CapacityFactor = 2.0 });
        var r = model.MoeSteps.Single().Routing;
        Assert.Equal(1, r.K);
        Assert.Equal(2.0, r.CapacityFactor);
        var ex = Assert.Throws<ModelPackageException>(() => MoeModel.Load(p.Dir, new LoadOptions { TopK = 9 }));
        Assert.Contains("routing.k = 9", ex.Message);
        Assert.Contains("step 'moe'", ex.Message);
    }

    [Fact]
    public void Load_ReportsEverySubgraphWithParameters()
    {
        using var p = new TestPackage(d: 4, experts: 3);
        using var model = MoeModel.Load(p.Dir);
        var roles = model.Report.Subgraphs.Select(s => s.Role).ToArray();
        Assert.Equal(["pre", "moe/gate", "moe/e0", "moe/e1", "moe/e2", "post"], roles);
        Assert.Equal(16, model.Report.Subgraphs.Single(s => s.Role == "moe/e1").Parameters);
        Assert.Equal(12, model.Report.Subgraphs.Single(s => s.Role == "moe/gate").Parameters);
        Assert.All(model.Report.Subgraphs, s => Assert.Equal(MoeModal.Core.Packages.ExecutionProviderKind.Cpu, s.Actual));
    }

    [Fact]
    public void RunMoeStep_AloneMatchesTheFullRun()
    {
        using var p = new TestPackage(d: 4, experts: 4);
        using var model = MoeModel.Load(p.Dir);
        var x = RandomInput(2, 5, 4, 9);
        var full = model.Run(new Dictionary<string, Tensor> { ["x"] = x }).Tensors["out"].Floats!;
        var (alone, trace) = model.RunMoeStep("moe", x, x);
        Assert.Equal(full, alone.Floats!);
        Assert.Equal(10, trace.Tokens);
    }
}

using BenchmarkDotNet.Attributes;
using MoeModal.Core.Dispatch;
using MoeModal.Core.Routing;

namespace MoeModal.Benchmarks;

/// <summary>
/// The router's own hot paths at the vision model's shapes (49 tokens per image, 8 experts,
/// D = 96): routing, gather and weighted scatter. Run: dotnet run -c Release --project benchmarks/MoeModal.Benchmarks
/// </summary>
[MemoryDiagnoser]
public class RouterBenchmarks
{
    private const int E = 8, D = 96, PerItem = 49;
    private float[] _logits = [];
    private float[] _x = [];
    private float[] _y = [];
    private float[] _out = [];
    private float[] _gathered = [];
    private readonly RoutingPlan _plan = new();

    [Params(1, 128)]
    public int Batch { get; set; }

    [Params(0.0, 1.0)]
    public double CapacityFactor { get; set; }

    private int N => Batch * PerItem;

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(42);
        _logits = [.. Enumerable.Range(0, N * E).Select(_ => (float)(rng.NextDouble() * 4 - 2))];
        _x = [.. Enumerable.Range(0, N * D).Select(_ => (float)rng.NextDouble())];
        _y = new float[N * 2 * D];
        _out = new float[N * D];
        _gathered = new float[N * D];
        Route();
    }

    private RoutingOptions Options => new() { K = 2, CapacityFactor = CapacityFactor, BatchPrioritized = true };

    [Benchmark]
    public int Route()
    {
        Router.Route(_logits, N, E, PerItem, Options, _plan);
        return _plan.Dropped;
    }

    [Benchmark]
    public void GatherAllExperts()
    {
        for (int e = 0; e < E; e++) TokenDispatch.Gather(_x, D, _plan.TokensOf(e), _gathered);
    }

    [Benchmark]
    public void ScatterAllExperts()
    {
        for (int e = 0; e < E; e++) TokenDispatch.ScatterAdd(_y, D, _plan.TokensOf(e), _plan.WeightsOf(e), _out);
    }
}

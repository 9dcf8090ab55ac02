using System.Buffers;
using System.Collections.Concurrent;
using Microsoft.ML.OnnxRuntime;
using MoeModal.Abstractions;
using MoeModal.Core.Dispatch;
using MoeModal.Core.Packages;
using MoeModal.Core.Routing;

namespace MoeModal.Core.Execution;

/// <summary>
/// One MoE layer: gate → router → dispatch → experts → combine. Only experts that receive tokens
/// run; each runs once on its gathered batch; independent experts run in parallel. Buffers for the
/// gate logits, gathered rows and expert outputs come from a pool and are returned after the call.
/// </summary>
internal sealed class MoeStepRunner : IStepRunner
{
    private readonly Subgraph _gate;
    private readonly Subgraph[] _experts;
    private readonly string[] _expertNames;
    private readonly string _input;
    private readonly string? _residual;
    private readonly string _output;
    private readonly int _parallelism;
    private readonly ConcurrentBag<RoutingPlan> _plans = [];

    public MoeStepRunner(MoeStepManifest step, Subgraph gate, Subgraph[] experts, string[] expertNames,
        RoutingOptions routing, int d, int dOut, int parallelism)
    {
        Name = step.Name;
        _gate = gate;
        _experts = experts;
        _expertNames = expertNames;
        _input = step.Input;
        _residual = step.Residual;
        _output = step.Output;
        Routing = routing;
        D = d;
        DOut = dOut;
        _parallelism = Math.Max(1, parallelism);
    }

    public string Name { get; }
    public RoutingOptions Routing { get; }
    public int D { get; }
    public int DOut { get; }
    public int ExpertCount => _experts.Length;
    public IReadOnlyList<string> ExpertNames => _expertNames;
    public string InputTensor => _input;
    public string? ResidualTensor => _residual;
    public string OutputTensor => _output;

    public IEnumerable<Subgraph> Subgraphs => [_gate, .. _experts];

    public void Execute(Dictionary<string, Tensor> store, RunContext context)
    {
        var x = store[_input];
        var residual = _residual is null ? null : store[_residual];
        store[_output] = Run(x, residual, context);
    }

    /// <summary>Runs the layer on <paramref name="x"/> [..., D] (and the residual [..., D_out]).</summary>
    public Tensor Run(Tensor x, Tensor? residual, RunContext context)
    {
        float[] xs = x.AsFloats(_input);
        int n = xs.Length / D;
        int items = x.Shape.Count >= 3 ? x.Shape[0] : n;
        int groupSize = Routing.Group == RoutingGroup.Item && items > 0 ? n / items : n;
        var outShape = x.Shape.ToArray();
        outShape[^1] = DOut;
        var output = new float[checked(n * DOut)];
        if (residual is not null) residual.AsFloats(_residual!).AsSpan().CopyTo(output);
        if (n == 0) return Tensor.FromFloats(output, outShape);

        int e = _experts.Length;
        float[] logits = ArrayPool<float>.Shared.Rent(n * e);
        if (!_plans.TryTake(out var plan)) plan = new RoutingPlan();
        var buffers = new float[e][];
        try
        {
            RunGate(xs, n, logits);
            Router.Route(logits.AsSpan(0, n * e), n, e, Math.Max(1, groupSize), Routing, plan, Name);
            RunExperts(xs, plan, buffers);
            for (int i = 0; i < e; i++)
                if (buffers[i] is { } y) TokenDispatch.ScatterAdd(y, DOut, plan.TokensOf(i), plan.WeightsOf(i), output);
            context.Traces.Add(Trace(plan, x.Shape, context.TraceTokens));
        }
        finally
        {
            ArrayPool<float>.Shared.Return(logits);
            foreach (var b in buffers) if (b is not null) ArrayPool<float>.Shared.Return(b);
            _plans.Add(plan);
        }
        return Tensor.FromFloats(output, outShape);
    }

    private void RunGate(float[] xs, int n, float[] logits)
    {
        try
        {
            using var input = OrtTensors.View(xs.AsMemory(0, n * D), n, D);
            using var output = OrtTensors.View(logits.AsMemory(0, n * _experts.Length), n, _experts.Length);
            _gate.Session.Run(OrtTensors.DefaultRun, _gate.InputNames, [input], _gate.OutputNames, [output]);
        }
        catch (OnnxRuntimeException ex)
        {
            throw new InferenceException($"step '{Name}': gate ({_gate.Path}) failed: {ex.Message}", ex);
        }
    }

    private void RunExperts(float[] xs, RoutingPlan plan, float[][] outputs)
    {
        // Busiest experts first so parallel workers finish together.
        var work = Enumerable.Range(0, _experts.Length)
            .Where(i => plan.TokensPerExpert[i] > 0)
            .OrderByDescending(i => plan.TokensPerExpert[i])
            .ToArray();
        if (_parallelism == 1 || work.Length <= 1)
        {
            foreach (int i in work) outputs[i] = RunExpert(i, xs, plan.TokensOf(i).ToArray());
            return;
        }
        var tokens = work.ToDictionary(i => i, i => plan.TokensOf(i).ToArray());
        try
        {
            Parallel.ForEach(work, new ParallelOptions { MaxDegreeOfParallelism = _parallelism },
                i => outputs[i] = RunExpert(i, xs, tokens[i]));
        }
        catch (AggregateException ex) when (ex.InnerExceptions.Count > 0)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(ex.InnerExceptions[0]).Throw();
        }
    }

    /// <summary>Gathers the expert's tokens, runs it once, returns its pooled output rows.</summary>
    private float[] RunExpert(int i, float[] xs, int[] tokens)
    {
        int count = tokens.Length;
        float[] input = ArrayPool<float>.Shared.Rent(count * D);
        float[] y = ArrayPool<float>.Shared.Rent(count * DOut);
        try
        {
            TokenDispatch.Gather(xs, D, tokens, input);
            var expert = _experts[i];
            using var inValue = OrtTensors.View(input.AsMemory(0, count * D), count, D);
            using var outValue = OrtTensors.View(y.AsMemory(0, count * DOut), count, DOut);
            expert.Session.Run(OrtTensors.DefaultRun, expert.InputNames, [inValue], expert.OutputNames, [outValue]);
            return y;
        }
        catch (OnnxRuntimeException ex)
        {
            ArrayPool<float>.Shared.Return(y);
            throw new InferenceException($"step '{Name}': expert '{_expertNames[i]}' ({_experts[i].Path}) failed: {ex.Message}", ex);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(input);
        }
    }

    private MoeStepTrace Trace(RoutingPlan plan, IReadOnlyList<int> xShape, bool tokens)
    {
        TokenAssignments? assignments = null;
        if (tokens)
            assignments = new TokenAssignments(plan.ChoiceExpert.ToArray(), plan.ChoiceWeight.ToArray(),
                plan.Kept.ToArray(), xShape.Take(xShape.Count - 1).ToArray());
        return new MoeStepTrace(Name, plan.Tokens, plan.K, plan.TokensPerExpert.ToArray(), plan.Dropped, assignments);
    }

    public void Dispose()
    {
        _gate.Dispose();
        foreach (var s in _experts) s.Dispose();
    }
}

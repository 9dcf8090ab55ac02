using MoeModal.Abstractions;

namespace MoeModal.Core.Execution;

/// <summary>One step of a loaded package.</summary>
internal interface IStepRunner : IDisposable
{
    string Name { get; }

    /// <summary>Reads its inputs from <paramref name="store"/> and adds its outputs.</summary>
    void Execute(Dictionary<string, Tensor> store, RunContext context);

    IEnumerable<Subgraph> Subgraphs { get; }
}

/// <summary>Per-call state: whether to keep per-token routing, and the traces collected.</summary>
internal sealed class RunContext(bool traceTokens)
{
    public bool TraceTokens { get; } = traceTokens;
    public List<MoeStepTrace> Traces { get; } = [];
}

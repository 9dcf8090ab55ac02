using MoeModal.Core.Packages;

namespace MoeModal.Core.Execution;

/// <summary>One subgraph as loaded: where it runs and why, its size, how long it took.</summary>
public sealed record SubgraphReport(
    string Role,
    string Path,
    ExecutionProviderKind Requested,
    ExecutionProviderKind Actual,
    string? FallbackReason,
    long Parameters,
    TimeSpan LoadTime);

/// <summary>What a load did: every subgraph's provider (with fallbacks), parameters and time.</summary>
public sealed record LoadReport(IReadOnlyList<SubgraphReport> Subgraphs, TimeSpan LoadTime, string? CudaFailure)
{
    public long Parameters => Subgraphs.Sum(s => s.Parameters);

    /// <summary>Subgraphs that asked for CUDA and run on CPU.</summary>
    public IEnumerable<SubgraphReport> Fallbacks => Subgraphs.Where(s => s.Requested != s.Actual);
}

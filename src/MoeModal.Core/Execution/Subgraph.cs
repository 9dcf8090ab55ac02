using Microsoft.ML.OnnxRuntime;
using MoeModal.Core.Packages;

namespace MoeModal.Core.Execution;

/// <summary>One ONNX Runtime session over one subgraph file, created once at load and owned here.</summary>
public sealed class Subgraph : IDisposable
{
    internal Subgraph(string role, string path, InferenceSession session, ExecutionProviderKind requested,
        ExecutionProviderKind actual, string? fallbackReason, long parameters, TimeSpan loadTime)
    {
        Role = role;
        Path = path;
        Session = session;
        Requested = requested;
        Actual = actual;
        FallbackReason = fallbackReason;
        Parameters = parameters;
        LoadTime = loadTime;
        InputNames = [.. session.InputMetadata.Keys];
        OutputNames = [.. session.OutputMetadata.Keys];
    }

    /// <summary>"trunk0", "moe1/gate", "moe1/expert3", "baseline/dense".</summary>
    public string Role { get; }

    /// <summary>Path relative to the package folder (or absolute for plugin-supplied files).</summary>
    public string Path { get; }

    internal InferenceSession Session { get; }

    public ExecutionProviderKind Requested { get; }
    public ExecutionProviderKind Actual { get; }
    public string? FallbackReason { get; }
    public long Parameters { get; }
    public TimeSpan LoadTime { get; }
    public IReadOnlyList<string> InputNames { get; }
    public IReadOnlyList<string> OutputNames { get; }

    internal IReadOnlyDictionary<string, NodeMetadata> Inputs => Session.InputMetadata;
    internal IReadOnlyDictionary<string, NodeMetadata> Outputs => Session.OutputMetadata;

    public void Dispose() => Session.Dispose();
}

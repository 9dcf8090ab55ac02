using System.Text.Json.Nodes;
using MoeModal.Abstractions;
using MoeModal.Core.Routing;

namespace MoeModal.Core.Packages;

/// <summary>Execution providers a subgraph may ask for.</summary>
public enum ExecutionProviderKind
{
    Cpu,
    Cuda,
}

/// <summary>A parsed, not yet validated <c>moemodal.json</c>.</summary>
public sealed record PackageManifest(
    string Name,
    string Modality,
    string? Description,
    string? Recipe,
    ExecutionProviderKind ExecutionProvider,
    IReadOnlyList<TensorInfo> Inputs,
    IReadOnlyList<TensorInfo> Outputs,
    IReadOnlyList<StepManifest> Steps,
    JsonObject Metadata,
    BaselineManifest Baselines);

/// <summary>One step of the dataflow.</summary>
public abstract record StepManifest(string Name);

/// <summary>Runs one subgraph; maps subgraph input/output names to package tensors.</summary>
public sealed record OnnxStepManifest(
    string Name,
    string Path,
    IReadOnlyDictionary<string, string> Inputs,
    IReadOnlyDictionary<string, string> Outputs,
    ExecutionProviderKind? ExecutionProvider) : StepManifest(Name);

/// <summary>A gate plus experts with a routing policy.</summary>
public sealed record MoeStepManifest(
    string Name,
    string Input,
    string? Residual,
    string Output,
    string GatePath,
    ExecutionProviderKind? GateExecutionProvider,
    IReadOnlyList<ExpertManifest> Experts,
    RoutingOptions Routing) : StepManifest(Name);

public sealed record ExpertManifest(string Name, string Path, ExecutionProviderKind? ExecutionProvider);

/// <summary>Optional single-graph exports of the same weights, used by <c>bench</c>.</summary>
public sealed record BaselineManifest(string? Dense, IReadOnlyDictionary<string, string> MoeLayers)
{
    public static readonly BaselineManifest None = new(null, new Dictionary<string, string>());
}

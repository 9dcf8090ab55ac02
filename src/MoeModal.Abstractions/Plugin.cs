using System.Text.Json.Nodes;

namespace MoeModal.Abstractions;

/// <summary>
/// A modality plugin: turns raw inputs (image bytes, WAV bytes, robot observations) into a package's
/// input tensors and the package's output tensors back into results. Built-in plugins implement this
/// exactly as third-party ones do; the host finds implementations in plugin assemblies by reflection
/// (public, non-abstract, with a public parameterless constructor).
/// </summary>
public interface IModalityPlugin
{
    /// <summary>The modality this plugin serves; matches a package manifest's <c>modality</c>.</summary>
    string Modality { get; }

    /// <summary>One line for listings.</summary>
    string Description { get; }

    /// <summary>What raw inputs the plugin accepts, e.g. file extensions like ".png".</summary>
    IReadOnlyList<string> AcceptedInputs { get; }

    /// <summary>
    /// Binds the plugin to one package: reads its metadata (labels, preprocessing constants) and
    /// checks the package's inputs and outputs. Throws <see cref="PluginException"/> naming what
    /// is missing or wrong.
    /// </summary>
    IModalityProcessor Bind(PackageInfo package);

    /// <summary>Extra experts the plugin adds to a package's MoE steps (default: none).</summary>
    IEnumerable<ExpertContribution> ContributeExperts(PackageInfo package) => [];
}

/// <summary>A plugin bound to one package.</summary>
public interface IModalityProcessor
{
    /// <summary>
    /// Turns one raw input into the package's input tensors, each with a leading batch axis of 1.
    /// Throws <see cref="InputException"/> with a clear message when the input is bad.
    /// Items whose tensors have equal shapes may be stacked into one batch by the host.
    /// </summary>
    IReadOnlyDictionary<string, Tensor> Preprocess(RawInput input);

    /// <summary>Turns item <paramref name="item"/> of a batched result into a JSON result object.</summary>
    JsonObject Postprocess(InferenceOutput output, int item);
}

/// <summary>One raw input: its name (a path, a client id) and its bytes.</summary>
public sealed record RawInput(string Name, ReadOnlyMemory<byte> Bytes);

/// <summary>What a plugin learns about a package when it binds.</summary>
public sealed record PackageInfo(
    string Name,
    string Modality,
    string Directory,
    IReadOnlyList<TensorInfo> Inputs,
    IReadOnlyList<TensorInfo> Outputs,
    JsonObject Metadata,
    IReadOnlyList<string> MoeSteps);

/// <summary>A package-level tensor: name, element type and shape (-1 for a dynamic axis).</summary>
public sealed record TensorInfo(string Name, TensorKind Kind, IReadOnlyList<int> Shape);

/// <summary>An expert a plugin adds to one MoE step: an ONNX file with the step's D and D_out.</summary>
public sealed record ExpertContribution(string Step, string Name, string OnnxPath, string? ExecutionProvider = null);

/// <summary>The result of one run: output tensors plus what the router did in each MoE step.</summary>
public sealed record InferenceOutput(
    IReadOnlyDictionary<string, Tensor> Tensors,
    IReadOnlyList<MoeStepTrace> Routing);

/// <summary>
/// What the router did in one MoE step during one run. <see cref="Assignments"/> is filled only when
/// the caller asked for traces.
/// </summary>
public sealed record MoeStepTrace(
    string Step,
    int Tokens,
    int K,
    IReadOnlyList<int> TokensPerExpert,
    int DroppedAssignments,
    TokenAssignments? Assignments);

/// <summary>
/// Per-token routing: for token t and rank r (0 ≤ r &lt; K), entry t·K + r holds the expert index,
/// the weight, and whether the assignment was kept (false = dropped by capacity).
/// </summary>
public sealed record TokenAssignments(int[] Experts, float[] Weights, bool[] Kept, IReadOnlyList<int> TokenShape);

/// <summary>Bad input from a user or client: the message says what was wrong.</summary>
public class InputException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A plugin cannot serve a package (missing metadata, wrong tensor shapes).</summary>
public class PluginException(string message, Exception? inner = null) : Exception(message, inner);

using Microsoft.ML.OnnxRuntime;
using MoeModal.Abstractions;
using MoeModal.Core.Packages;

namespace MoeModal.Core.Execution;

/// <summary>
/// One ONNX file of a package run on its own, by its own input and output names — the package's
/// baselines (the dense all-experts export) that <c>bench</c> measures against.
/// </summary>
public sealed class StandaloneGraph : IDisposable
{
    private readonly Subgraph _graph;

    private StandaloneGraph(Subgraph graph) => _graph = graph;

    public Subgraph Subgraph => _graph;

    public static StandaloneGraph Load(string packageDirectory, string relativePath, LoadOptions options, string role = "baseline")
    {
        var factory = new SessionFactory(new PackagePaths(packageDirectory), options);
        return new StandaloneGraph(factory.Create(relativePath, role, role, options.ExecutionProvider ?? ExecutionProviderKind.Cpu, options.IntraOpThreads));
    }

    public IReadOnlyList<string> InputNames => _graph.InputNames;

    public Dictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs)
    {
        var values = new List<OrtValue>();
        try
        {
            foreach (var name in _graph.InputNames)
            {
                if (!inputs.TryGetValue(name, out var t)) throw new InputException($"{_graph.Path}: input '{name}' is missing");
                values.Add(OrtTensors.View(t));
            }
            using var results = _graph.Session.Run(OrtTensors.DefaultRun, _graph.InputNames, values, _graph.OutputNames);
            var output = new Dictionary<string, Tensor>();
            int i = 0;
            foreach (var r in results) output[_graph.OutputNames[i]] = OrtTensors.Copy(r, _graph.OutputNames[i++]);
            return output;
        }
        catch (OnnxRuntimeException ex)
        {
            throw new InferenceException($"{_graph.Path}: ONNX Runtime failed: {ex.Message}", ex);
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    public void Dispose() => _graph.Dispose();
}

using Microsoft.ML.OnnxRuntime;
using MoeModal.Abstractions;
using MoeModal.Core.Packages;

namespace MoeModal.Core.Execution;

/// <summary>Runs one dense subgraph (trunk, head…) with the manifest's name bindings.</summary>
internal sealed class OnnxStepRunner : IStepRunner
{
    private readonly Subgraph _graph;
    private readonly string[] _inputNames;   // subgraph input names
    private readonly string[] _inputTensors; // package tensors bound to them
    private readonly string[] _outputNames;
    private readonly string[] _outputTensors;

    public OnnxStepRunner(OnnxStepManifest step, Subgraph graph)
    {
        Name = step.Name;
        _graph = graph;
        _inputNames = [.. step.Inputs.Keys];
        _inputTensors = [.. step.Inputs.Values];
        _outputNames = [.. step.Outputs.Keys];
        _outputTensors = [.. step.Outputs.Values];
    }

    public string Name { get; }

    public IEnumerable<Subgraph> Subgraphs => [_graph];

    public void Execute(Dictionary<string, Tensor> store, RunContext context)
    {
        var inputs = new OrtValue[_inputNames.Length];
        try
        {
            for (int i = 0; i < inputs.Length; i++) inputs[i] = OrtTensors.View(store[_inputTensors[i]]);
            using var results = _graph.Session.Run(OrtTensors.DefaultRun, _inputNames, inputs, _outputNames);
            int j = 0;
            foreach (var r in results)
            {
                store[_outputTensors[j]] = OrtTensors.Copy(r, _outputTensors[j]);
                j++;
            }
        }
        catch (OnnxRuntimeException ex)
        {
            throw new InferenceException($"step '{Name}' ({_graph.Path}): ONNX Runtime failed: {ex.Message}", ex);
        }
        finally
        {
            foreach (var v in inputs) v?.Dispose();
        }
    }

    public void Dispose() => _graph.Dispose();
}

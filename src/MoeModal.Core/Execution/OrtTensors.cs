using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using MoeModal.Abstractions;
using Tensor = MoeModal.Abstractions.Tensor;

namespace MoeModal.Core.Execution;

/// <summary>Conversions between managed <see cref="Tensor"/>s and OrtValues.</summary>
internal static class OrtTensors
{
    /// <summary>Default run options shared by every call (read-only during runs; lives as long as the process).</summary>
    public static readonly RunOptions DefaultRun = new();

    /// <summary>An OrtValue over the tensor's own array (pinned, no copy). Dispose it before the array is reused.</summary>
    public static OrtValue View(Tensor t)
    {
        var shape = new long[t.Shape.Count];
        for (int i = 0; i < shape.Length; i++) shape[i] = t.Shape[i];
        return t.Kind == TensorKind.Float32
            ? OrtValue.CreateTensorValueFromMemory(t.Floats!, shape)
            : OrtValue.CreateTensorValueFromMemory(t.Int64s!, shape);
    }

    /// <summary>An OrtValue over part of a float buffer (pinned for the value's lifetime).</summary>
    public static OrtValue View(Memory<float> data, long rows, long cols) =>
        OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, data, [rows, cols]);

    /// <summary>Copies an output value into a new managed tensor.</summary>
    public static Tensor Copy(OrtValue v, string name)
    {
        var info = v.GetTensorTypeAndShape();
        var shape = info.Shape.Select(d => checked((int)d)).ToArray();
        return info.ElementDataType switch
        {
            TensorElementType.Float => Tensor.FromFloats(v.GetTensorDataAsSpan<float>().ToArray(), shape),
            TensorElementType.Int64 => Tensor.FromInt64s(v.GetTensorDataAsSpan<long>().ToArray(), shape),
            _ => throw new InferenceException($"output '{name}' has element type {info.ElementDataType}; only float32 and int64 are supported"),
        };
    }
}

using Microsoft.ML.OnnxRuntime.Tensors;
using MoeModal.Abstractions;

namespace MoeModal.Core.Execution;

/// <summary>What is known at load about one package tensor: type, shape (-1 = dynamic) and who writes it.</summary>
internal sealed record TensorFact(string Name, TensorKind Kind, int[] Shape, string Producer)
{
    public int Rank => Shape.Length;

    public static bool TryKindOf(TensorElementType t, out TensorKind kind)
    {
        switch (t)
        {
            case TensorElementType.Float: kind = TensorKind.Float32; return true;
            case TensorElementType.Int64: kind = TensorKind.Int64; return true;
            default: kind = default; return false;
        }
    }

    public static string KindName(TensorKind k) => k == TensorKind.Float32 ? "float32" : "int64";

    public static string ShapeText(IEnumerable<int> shape) => "[" + string.Join(",", shape.Select(d => d < 0 ? "?" : d.ToString())) + "]";

    /// <summary>Merges two partially known shapes; null when they disagree.</summary>
    public static int[]? Unify(int[] a, int[] b)
    {
        if (a.Length != b.Length) return null;
        var r = new int[a.Length];
        for (int i = 0; i < a.Length; i++)
        {
            if (a[i] >= 0 && b[i] >= 0 && a[i] != b[i]) return null;
            r[i] = a[i] >= 0 ? a[i] : b[i];
        }
        return r;
    }
}

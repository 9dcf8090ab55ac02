namespace MoeModal.Abstractions;

/// <summary>Element types a package tensor may have.</summary>
public enum TensorKind
{
    Float32,
    Int64,
}

/// <summary>
/// A dense, row-major tensor held in managed memory: what plugins hand to the runtime and get back.
/// The runtime never keeps a reference to a tensor after the call that received it returns.
/// </summary>
public sealed class Tensor
{
    private Tensor(TensorKind kind, int[] shape, float[]? floats, long[]? int64s)
    {
        Kind = kind;
        Shape = shape;
        Floats = floats;
        Int64s = int64s;
    }

    public TensorKind Kind { get; }

    /// <summary>Dimensions, outermost first.</summary>
    public IReadOnlyList<int> Shape { get; }

    /// <summary>The data when <see cref="Kind"/> is <see cref="TensorKind.Float32"/>, else null.</summary>
    public float[]? Floats { get; }

    /// <summary>The data when <see cref="Kind"/> is <see cref="TensorKind.Int64"/>, else null.</summary>
    public long[]? Int64s { get; }

    /// <summary>Number of elements (product of the shape).</summary>
    public int Length => Kind == TensorKind.Float32 ? Floats!.Length : Int64s!.Length;

    public static Tensor FromFloats(float[] data, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        CheckShape(data.Length, shape);
        return new Tensor(TensorKind.Float32, (int[])shape.Clone(), data, null);
    }

    public static Tensor FromInt64s(long[] data, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        CheckShape(data.Length, shape);
        return new Tensor(TensorKind.Int64, (int[])shape.Clone(), null, data);
    }

    /// <summary>The float data, or an exception naming the tensor when it holds another type.</summary>
    public float[] AsFloats(string name) =>
        Floats ?? throw new InvalidOperationException($"tensor '{name}' is {Kind}, not Float32");

    /// <summary>Number of elements one item of axis 0 spans.</summary>
    public int ItemLength
    {
        get
        {
            int n = 1;
            for (int i = 1; i < Shape.Count; i++) n *= Shape[i];
            return n;
        }
    }

    /// <summary>Shape as "[a,b,c]" for messages.</summary>
    public string ShapeText => "[" + string.Join(",", Shape) + "]";

    private static void CheckShape(int length, int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long n = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension {d} in shape [{string.Join(",", shape)}]");
            n *= d;
            if (n > int.MaxValue) throw new ArgumentException($"shape [{string.Join(",", shape)}] is too large");
        }
        if (n != length)
            throw new ArgumentException($"shape [{string.Join(",", shape)}] holds {n} elements but the data has {length}");
    }
}

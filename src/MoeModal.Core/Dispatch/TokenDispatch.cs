using System.Numerics;
using System.Runtime.InteropServices;

namespace MoeModal.Core.Dispatch;

/// <summary>Moves token rows by a routing plan: gather into an expert's contiguous batch, scatter back weighted.</summary>
public static class TokenDispatch
{
    /// <summary>Copies rows <paramref name="tokens"/> (each <paramref name="width"/> floats) of <paramref name="source"/> into <paramref name="destination"/>, in order.</summary>
    public static void Gather(ReadOnlySpan<float> source, int width, ReadOnlySpan<int> tokens, Span<float> destination)
    {
        if (destination.Length < tokens.Length * width) throw new ArgumentException("destination is too small for the gathered rows");
        for (int j = 0; j < tokens.Length; j++)
            source.Slice(tokens[j] * width, width).CopyTo(destination.Slice(j * width, width));
    }

    /// <summary>
    /// For every row j of <paramref name="rows"/>: destination[tokens[j]] += weights[j] · rows[j].
    /// </summary>
    public static void ScatterAdd(ReadOnlySpan<float> rows, int width, ReadOnlySpan<int> tokens, ReadOnlySpan<float> weights, Span<float> destination)
    {
        if (rows.Length < tokens.Length * width) throw new ArgumentException("rows hold fewer values than the tokens need");
        for (int j = 0; j < tokens.Length; j++)
            MultiplyAdd(rows.Slice(j * width, width), weights[j], destination.Slice(tokens[j] * width, width));
    }

    /// <summary>y += a · x, vectorized.</summary>
    public static void MultiplyAdd(ReadOnlySpan<float> x, float a, Span<float> y)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<float>.Count)
        {
            var va = new Vector<float>(a);
            var xv = MemoryMarshal.Cast<float, Vector<float>>(x);
            var yv = MemoryMarshal.Cast<float, Vector<float>>(y);
            for (int v = 0; v < xv.Length; v++) yv[v] += va * xv[v];
            i = xv.Length * Vector<float>.Count;
        }
        for (; i < x.Length; i++) y[i] += a * x[i];
    }
}

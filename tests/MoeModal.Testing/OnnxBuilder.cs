namespace MoeModal.Testing;

/// <summary>
/// Builds small ONNX models (opset 17) in code, so tests make their own fixtures: linear experts
/// with known outputs, gates with chosen logits, and deliberately broken subgraphs.
/// </summary>
public sealed class OnnxBuilder
{
    public const int Float = 1;
    public const int Int64 = 7;

    private readonly List<ProtoWriter> _nodes = [];
    private readonly List<ProtoWriter> _inits = [];
    private readonly List<ProtoWriter> _inputs = [];
    private readonly List<ProtoWriter> _outputs = [];
    private int _nodeId;

    /// <summary>Adds a graph input. Dimensions are ints (static) or strings (symbolic).</summary>
    public OnnxBuilder Input(string name, int elemType, params object[] dims)
    {
        _inputs.Add(ValueInfo(name, elemType, dims));
        return this;
    }

    public OnnxBuilder Output(string name, int elemType, params object[] dims)
    {
        _outputs.Add(ValueInfo(name, elemType, dims));
        return this;
    }

    public OnnxBuilder Initializer(string name, float[] data, params long[] dims)
    {
        var t = new ProtoWriter();
        foreach (var d in dims) t.Varint(1, d);
        t.Varint(2, Float).String(8, name);
        var raw = new byte[data.Length * 4];
        Buffer.BlockCopy(data, 0, raw, 0, raw.Length);
        t.Bytes(9, raw);
        _inits.Add(t);
        return this;
    }

    public OnnxBuilder InitializerInt64(string name, long[] data, params long[] dims)
    {
        var t = new ProtoWriter();
        foreach (var d in dims) t.Varint(1, d);
        t.Varint(2, Int64).String(8, name);
        var raw = new byte[data.Length * 8];
        Buffer.BlockCopy(data, 0, raw, 0, raw.Length);
        t.Bytes(9, raw);
        _inits.Add(t);
        return this;
    }

    /// <summary>An initializer whose data lives in an external file (for path-escape tests).</summary>
    public OnnxBuilder ExternalInitializer(string name, string location, params long[] dims)
    {
        var t = new ProtoWriter();
        foreach (var d in dims) t.Varint(1, d);
        t.Varint(2, Float).String(8, name);
        t.Message(13, new ProtoWriter().String(1, "location").String(2, location));
        t.Varint(14, 1);
        _inits.Add(t);
        return this;
    }

    /// <summary>Adds a node. Attribute values: long/int, float, long[], string.</summary>
    public OnnxBuilder Node(string op, string[] inputs, string[] outputs, params (string Name, object Value)[] attributes)
    {
        var n = new ProtoWriter();
        foreach (var i in inputs) n.String(1, i);
        foreach (var o in outputs) n.String(2, o);
        n.String(3, $"{op}_{_nodeId++}").String(4, op);
        foreach (var (name, value) in attributes)
        {
            var a = new ProtoWriter().String(1, name);
            switch (value)
            {
                case int i: a.Varint(20, 2).Varint(3, i); break;
                case long l: a.Varint(20, 2).Varint(3, l); break;
                case float f: a.Varint(20, 1).Float(2, f); break;
                case long[] ls: a.Varint(20, 7); foreach (var l in ls) a.Varint(8, l); break;
                case string s: a.Varint(20, 3).String(4, s); break;
                default: throw new ArgumentException($"unsupported attribute type {value.GetType()}");
            }
            n.Message(5, a);
        }
        _nodes.Add(n);
        return this;
    }

    public byte[] Build(int opset = 17)
    {
        var g = new ProtoWriter();
        foreach (var n in _nodes) g.Message(1, n);
        g.String(2, "g");
        foreach (var i in _inits) g.Message(5, i);
        foreach (var i in _inputs) g.Message(11, i);
        foreach (var o in _outputs) g.Message(12, o);
        return new ProtoWriter()
            .Varint(1, 8)
            .String(2, "moemodal-tests")
            .Message(8, new ProtoWriter().String(1, "").Varint(2, opset))
            .Message(7, g)
            .ToArray();
    }

    public void Save(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllBytes(path, Build());
    }

    private static ProtoWriter ValueInfo(string name, int elemType, object[] dims)
    {
        var shape = new ProtoWriter();
        foreach (var d in dims)
        {
            var dim = d switch
            {
                int i => new ProtoWriter().Varint(1, i),
                long l => new ProtoWriter().Varint(1, l),
                string s => new ProtoWriter().String(2, s),
                _ => throw new ArgumentException("dims are ints or strings"),
            };
            shape.Message(1, dim);
        }
        var tensorType = new ProtoWriter().Varint(1, elemType).Message(2, shape);
        var type = new ProtoWriter().Message(1, tensorType);
        return new ProtoWriter().String(1, name).Message(2, type);
    }

    // ---- Common small graphs ----

    /// <summary>[n, d] → [n, dOut] = x · W (+ b), W row-major [d, dOut].</summary>
    public static OnnxBuilder Linear(int d, int dOut, float[] w, float[]? b = null, string input = "x", string output = "y")
    {
        var m = new OnnxBuilder()
            .Input(input, Float, "n", d)
            .Output(output, Float, "n", dOut)
            .Initializer("W", w, d, dOut);
        if (b is null) return m.Node("MatMul", [input, "W"], [output]);
        return m.Initializer("B", b, dOut).Node("MatMul", [input, "W"], ["xw"]).Node("Add", ["xw", "B"], [output]);
    }

    /// <summary>An expert y = scale · x on [n, d].</summary>
    public static OnnxBuilder ScaleExpert(int d, float scale) => Linear(d, d, Identity(d, scale));

    /// <summary>Identity subgraph over a tensor of any rank-3 shape [b, t, d].</summary>
    public static OnnxBuilder Identity3(int d, string input = "x", string output = "y") => new OnnxBuilder()
        .Input(input, Float, "b", "t", d)
        .Output(output, Float, "b", "t", d)
        .Node("Identity", [input], [output]);

    public static float[] Identity(int d, float scale = 1)
    {
        var w = new float[d * d];
        for (int i = 0; i < d; i++) w[i * d + i] = scale;
        return w;
    }
}

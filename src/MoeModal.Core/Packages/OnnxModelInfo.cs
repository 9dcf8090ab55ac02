namespace MoeModal.Core.Packages;

/// <summary>
/// What MoeModal reads from an ONNX file itself, without ONNX Runtime: the number of parameters
/// (initializer elements) and the external-data files it references. A minimal, bounded protobuf
/// walk over ModelProto → GraphProto → TensorProto (and subgraphs in node attributes).
/// </summary>
public sealed class OnnxModelInfo
{
    private const int MaxDepth = 32;

    private OnnxModelInfo() { }

    /// <summary>Sum of the element counts of all initializers and constant tensors.</summary>
    public long Parameters { get; private set; }

    /// <summary>Locations of external tensor data, as written in the file.</summary>
    public IReadOnlyList<string> ExternalDataLocations => _external;

    private readonly List<string> _external = [];

    public static OnnxModelInfo Read(ReadOnlySpan<byte> model)
    {
        var info = new OnnxModelInfo();
        var r = new ProtoReader(model);
        while (r.Next(out int field, out int wire))
        {
            if (field == 7 && wire == 2) info.ReadGraph(r.ReadBytes(), 1);
            else r.Skip(wire);
        }
        return info;
    }

    private void ReadGraph(ReadOnlySpan<byte> graph, int depth)
    {
        if (depth > MaxDepth) throw new FormatException("subgraphs nested too deeply");
        var r = new ProtoReader(graph);
        while (r.Next(out int field, out int wire))
        {
            if (wire != 2) { r.Skip(wire); continue; }
            switch (field)
            {
                case 5: ReadTensor(r.ReadBytes()); break;           // initializer
                case 1: ReadNode(r.ReadBytes(), depth); break;      // node
                default: r.Skip(wire); break;
            }
        }
    }

    private void ReadNode(ReadOnlySpan<byte> node, int depth)
    {
        var r = new ProtoReader(node);
        while (r.Next(out int field, out int wire))
        {
            if (field == 5 && wire == 2) ReadAttribute(r.ReadBytes(), depth);
            else r.Skip(wire);
        }
    }

    private void ReadAttribute(ReadOnlySpan<byte> attr, int depth)
    {
        var r = new ProtoReader(attr);
        while (r.Next(out int field, out int wire))
        {
            if (wire != 2) { r.Skip(wire); continue; }
            switch (field)
            {
                case 5: case 10: ReadTensor(r.ReadBytes()); break;           // t, tensors
                case 6: case 11: ReadGraph(r.ReadBytes(), depth + 1); break;  // g, graphs
                default: r.Skip(wire); break;
            }
        }
    }

    private void ReadTensor(ReadOnlySpan<byte> tensor)
    {
        var r = new ProtoReader(tensor);
        long elements = 1;
        while (r.Next(out int field, out int wire))
        {
            if (field == 1 && wire == 0) elements = checked(elements * (long)r.ReadVarint());
            else if (field == 1 && wire == 2)
            {
                var packed = new ProtoReader(r.ReadBytes());
                while (!packed.End) elements = checked(elements * (long)packed.ReadVarint());
            }
            else if (field == 13 && wire == 2) ReadExternalEntry(r.ReadBytes());
            else r.Skip(wire);
        }
        Parameters += elements;
    }

    private void ReadExternalEntry(ReadOnlySpan<byte> entry)
    {
        var r = new ProtoReader(entry);
        string? key = null, value = null;
        while (r.Next(out int field, out int wire))
        {
            if (field == 1 && wire == 2) key = System.Text.Encoding.UTF8.GetString(r.ReadBytes());
            else if (field == 2 && wire == 2) value = System.Text.Encoding.UTF8.GetString(r.ReadBytes());
            else r.Skip(wire);
        }
        if (key == "location" && value is not null) _external.Add(value);
    }

    /// <summary>Protobuf wire-format reader over a span; every read is bounds-checked.</summary>
    private ref struct ProtoReader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _pos;

        public readonly bool End => _pos >= _data.Length;

        public bool Next(out int field, out int wire)
        {
            if (End) { field = wire = 0; return false; }
            ulong tag = ReadVarint();
            field = (int)(tag >> 3);
            wire = (int)(tag & 7);
            if (field == 0) throw new FormatException("field number 0");
            return true;
        }

        public ulong ReadVarint()
        {
            ulong v = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (_pos >= _data.Length) throw new FormatException("truncated varint");
                byte b = _data[_pos++];
                v |= (ulong)(b & 0x7F) << shift;
                if ((b & 0x80) == 0) return v;
            }
            throw new FormatException("varint longer than 10 bytes");
        }

        public ReadOnlySpan<byte> ReadBytes()
        {
            ulong len = ReadVarint();
            if (len > (ulong)(_data.Length - _pos)) throw new FormatException("length-delimited field runs past the end");
            var s = _data.Slice(_pos, (int)len);
            _pos += (int)len;
            return s;
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case 0: ReadVarint(); break;
                case 1: Advance(8); break;
                case 2: ReadBytes(); break;
                case 5: Advance(4); break;
                default: throw new FormatException($"unsupported wire type {wire}");
            }
        }

        private void Advance(int n)
        {
            if (_data.Length - _pos < n) throw new FormatException("truncated fixed-size field");
            _pos += n;
        }
    }
}

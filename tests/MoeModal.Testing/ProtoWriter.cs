using System.Text;

namespace MoeModal.Testing;

/// <summary>A minimal protobuf writer: enough to write ONNX models for test fixtures.</summary>
public sealed class ProtoWriter
{
    private readonly MemoryStream _s = new();

    public ProtoWriter Varint(int field, long value)
    {
        Tag(field, 0);
        WriteVarint((ulong)value);
        return this;
    }

    public ProtoWriter Bytes(int field, ReadOnlySpan<byte> data)
    {
        Tag(field, 2);
        WriteVarint((ulong)data.Length);
        _s.Write(data);
        return this;
    }

    public ProtoWriter String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

    public ProtoWriter Message(int field, ProtoWriter inner) => Bytes(field, inner.ToArray());

    public ProtoWriter Float(int field, float value)
    {
        Tag(field, 5);
        _s.Write(BitConverter.GetBytes(value));
        return this;
    }

    public byte[] ToArray() => _s.ToArray();

    private void Tag(int field, int wire) => WriteVarint((ulong)((field << 3) | wire));

    private void WriteVarint(ulong v)
    {
        while (v >= 0x80)
        {
            _s.WriteByte((byte)(v | 0x80));
            v >>= 7;
        }
        _s.WriteByte((byte)v);
    }
}

using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MoeModal.Plugins.Robotics.Tests;

/// <summary>
/// A robot written from docs/robot-protocol.md alone: its own minimal MessagePack encoder and
/// decoder (no MessagePack library), raw sockets. Proves the document is enough.
/// </summary>
[Trait("Modality", "robot")]
public class IndependentRobotTests
{
    private static byte[] Str(string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        return b.Length < 32 ? [(byte)(0xa0 | b.Length), .. b] : [0xd9, (byte)b.Length, .. b];
    }

    private static byte[] Int(long v) => v is >= 0 and < 128 ? [(byte)v] : [0xd3, .. BitConverter.GetBytes(v).Reverse()];

    private static byte[] F64(double v) => [0xcb, .. BitConverter.GetBytes(v).Reverse()];

    private static byte[] Map(params (string K, byte[] V)[] e) => [(byte)(0x80 | e.Length), .. e.SelectMany(x => Str(x.K).Concat(x.V))];

    private static byte[] Arr(IEnumerable<double> v) { var l = v.ToList(); return [(byte)(0x90 | l.Count), .. l.SelectMany(F64)]; }

    private static async Task SendFrame(NetworkStream s, byte[] payload)
    {
        var len = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(len, (uint)payload.Length);
        await s.WriteAsync(len.Concat(payload).ToArray());
    }

    private static async Task<Dictionary<string, object?>> ReceiveFrame(NetworkStream s)
    {
        var len = new byte[4];
        await s.ReadExactlyAsync(len);
        var payload = new byte[BinaryPrimitives.ReadUInt32BigEndian(len)];
        await s.ReadExactlyAsync(payload);
        int pos = 0;
        return (Dictionary<string, object?>)Decode(payload, ref pos)!;
    }

    /// <summary>Decodes the subset the document promises the host sends.</summary>
    private static object? Decode(byte[] b, ref int p)
    {
        byte c = b[p++];
        if (c <= 0x7f) return (long)c;
        if (c >= 0xe0) return (long)(sbyte)c;
        if ((c & 0xe0) == 0xa0) return Text(b, ref p, c & 0x1f);
        if ((c & 0xf0) == 0x90) return List(b, ref p, c & 0x0f);
        if ((c & 0xf0) == 0x80) return Dict(b, ref p, c & 0x0f);
        switch (c)
        {
            case 0xc0: return null;
            case 0xc2: return false;
            case 0xc3: return true;
            case 0xca: { var v = BinaryPrimitives.ReadSingleBigEndian(b.AsSpan(p)); p += 4; return (double)v; }
            case 0xcb: { var v = BinaryPrimitives.ReadDoubleBigEndian(b.AsSpan(p)); p += 8; return v; }
            case 0xcc: return (long)b[p++];
            case 0xcd: { var v = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(p)); p += 2; return (long)v; }
            case 0xce: { var v = BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(p)); p += 4; return (long)v; }
            case 0xcf: { var v = BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(p)); p += 8; return (long)v; }
            case 0xd0: return (long)(sbyte)b[p++];
            case 0xd1: { var v = BinaryPrimitives.ReadInt16BigEndian(b.AsSpan(p)); p += 2; return (long)v; }
            case 0xd2: { var v = BinaryPrimitives.ReadInt32BigEndian(b.AsSpan(p)); p += 4; return (long)v; }
            case 0xd3: { var v = BinaryPrimitives.ReadInt64BigEndian(b.AsSpan(p)); p += 8; return v; }
            case 0xd9: return Text(b, ref p, b[p++]);
            case 0xda: { int n = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(p)); p += 2; return Text(b, ref p, n); }
            case 0xdc: { int n = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(p)); p += 2; return List(b, ref p, n); }
            case 0xde: { int n = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(p)); p += 2; return Dict(b, ref p, n); }
            default: throw new InvalidDataException($"type code 0x{c:x2} is not in the document");
        }
    }

    private static string Text(byte[] b, ref int p, int n) { var s = Encoding.UTF8.GetString(b, p, n); p += n; return s; }
    private static List<object?> List(byte[] b, ref int p, int n) { var l = new List<object?>(); for (int i = 0; i < n; i++) l.Add(Decode(b, ref p)); return l; }
    private static Dictionary<string, object?> Dict(byte[] b, ref int p, int n)
    {
        var d = new Dictionary<string, object?>();
        for (int i = 0; i < n; i++) { var k = (string)Decode(b, ref p)!; d[k] = Decode(b, ref p); }
        return d;
    }

    [Fact]
    public async Task HandRolledRobot_CompletesAnEpisode()
    {
        await using var f = new ServerFixture();
        using var tcp = new TcpClient { NoDelay = true };
        await tcp.ConnectAsync(IPAddress.Loopback, f.Port);
        var s = tcp.GetStream();
        await SendFrame(s, Map(("type", Str("hello")), ("version", Int(1)), ("task", Str("reacher")), ("variant", Str("standard")),
            ("obs_dim", Int(10)), ("act_dim", Int(2)), ("robot", Str("hand-rolled"))));
        var welcome = await ReceiveFrame(s);
        Assert.Equal("welcome", welcome["type"]);
        Assert.Equal(10, ((List<object?>)welcome["obs_layout"]!).Count);
        var high = ((List<object?>)welcome["act_high"]!).Select(Convert.ToDouble).ToArray();
        var obs = new double[10];
        for (long seq = 0; seq < 50; seq++)
        {
            obs[0] = Math.Cos(seq * 0.1);
            await SendFrame(s, Map(("type", Str("obs")), ("seq", Int(seq)), ("t", F64(seq * 0.01)), ("obs", Arr(obs))));
            var act = await ReceiveFrame(s);
            Assert.Equal("act", act["type"]);
            Assert.Equal(seq, act["seq"]);
            var a = ((List<object?>)act["action"]!).Select(Convert.ToDouble).ToArray();
            Assert.Equal(2, a.Length);
            Assert.All(a, v => Assert.InRange(v, -high[0], high[0]));
        }
        await SendFrame(s, Map(("type", Str("close")), ("reason", Str("done"))));
        Assert.Equal("close", (await ReceiveFrame(s))["type"]);
    }
}

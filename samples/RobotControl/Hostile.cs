using System.Net.Sockets;
using MoeModal.Plugins.Robotics.Protocol;

namespace RobotControl;

/// <summary>
/// Misbehaving clients to run beside the good robots (<c>--hostile N</c>): each thread cycles
/// through garbage bytes, oversized length prefixes, valid frames split at every byte offset,
/// deeply nested and many-keyed maps, duplicate keys, wrong types, and disconnects mid-frame,
/// until the good robots are done. The report says how often the host answered each with an
/// error frame or a close, so one run shows both the host's answers and the good robots' numbers.
/// </summary>
internal sealed class Hostile(string host, int port, int seed)
{
    private static readonly string[] Kinds =
        ["garbage", "oversized", "split_every_byte", "deep_nesting", "many_keys", "duplicate_keys", "wrong_types", "disconnect_mid_frame"];

    private readonly Dictionary<string, (int Runs, int ErrorFrames, int Closed)> _counts = Kinds.ToDictionary(k => k, _ => (0, 0, 0));

    public void Run(int worker, CancellationToken stop)
    {
        var rng = new Random(seed * 7919 + worker);
        for (int i = worker; !stop.IsCancellationRequested; i++)
        {
            string kind = Kinds[i % Kinds.Length];
            var (errorFrame, closed) = (false, false);
            try
            {
                (errorFrame, closed) = Attack(kind, rng);
            }
            catch (Exception ex) when (ex is IOException or SocketException or ProtocolException or ObjectDisposedException)
            {
                closed = true;
            }
            lock (_counts)
            {
                var c = _counts[kind];
                _counts[kind] = (c.Runs + 1, c.ErrorFrames + (errorFrame ? 1 : 0), c.Closed + (closed ? 1 : 0));
            }
        }
    }

    public System.Text.Json.Nodes.JsonObject Report()
    {
        var o = new System.Text.Json.Nodes.JsonObject();
        lock (_counts)
            foreach (var (k, c) in _counts)
                o[k] = new System.Text.Json.Nodes.JsonObject { ["runs"] = c.Runs, ["error_frames"] = c.ErrorFrames, ["closed"] = c.Closed };
        return o;
    }

    private (bool ErrorFrame, bool Closed) Attack(string kind, Random rng)
    {
        using var tcp = new TcpClient { NoDelay = true };
        tcp.Connect(host, port);
        var s = tcp.Client;
        s.ReceiveTimeout = 10_000;
        var w = new MessageWriter();
        byte[] Frame(params (string, object?)[] e) => w.Frame(e).ToArray();
        void Hello() => s.Send(Frame(("type", "hello"), ("version", 1), ("task", "cartpole"), ("variant", "standard"), ("obs_dim", 4), ("act_dim", 1)));
        switch (kind)
        {
            case "garbage":
                var junk = new byte[rng.Next(1, 4096)];
                rng.NextBytes(junk);
                s.Send(junk);
                break;
            case "oversized":
                Hello();
                s.Send([0x7f, 0xff, 0xff, 0xff]);
                break;
            case "split_every_byte":
                Hello();
                var obs = Frame(("type", "obs"), ("seq", 0), ("obs", new float[] { 0.01f, 0, 0.02f, 0 }));
                foreach (byte b in obs) s.Send([b]);
                break;
            case "deep_nesting":
                Hello();
                var nested = new List<byte> { 0x81, 0xa1, (byte)'x' };
                nested.AddRange(Enumerable.Repeat((byte)0x91, 50_000));
                nested.Add(0xc0);
                s.Send(Frames.Framed([.. nested]));
                break;
            case "many_keys":
                Hello();
                var map = new List<byte> { 0xde, 0x27, 0x10 };   // map16 of 10,000 entries
                for (int k = 0; k < 10_000; k++) { map.AddRange([0xa4, (byte)'k', (byte)(k >> 8), (byte)k, (byte)'x', 0xc0]); }
                s.Send(Frames.Framed([.. map]));
                break;
            case "duplicate_keys":
                Hello();
                s.Send(Frames.Framed([0x83, 0xa4, .. "type"u8, 0xa3, .. "obs"u8, 0xa3, .. "seq"u8, 0x01, 0xa3, .. "seq"u8, 0x02]));
                break;
            case "wrong_types":
                Hello();
                s.Send(Frame(("type", "obs"), ("seq", "one"), ("obs", "not numbers")));
                break;
            case "disconnect_mid_frame":
                Hello();
                var frame = Frame(("type", "obs"), ("seq", 0), ("obs", new float[] { 0, 0, 0, 0 }));
                s.Send(frame.AsSpan(0, rng.Next(1, frame.Length)));
                return (false, true);
        }
        // Read what the host says until it closes or a short while passes.
        bool error = false;
        var header = new byte[4];
        var buffer = new byte[Frames.DefaultMaxFrame];
        try
        {
            while (true)
            {
                int n = Frames.Read(s, header, _ => buffer, Frames.DefaultMaxFrame, TimeSpan.FromMilliseconds(300), TimeSpan.FromSeconds(2));
                if (n < 0) return (error, true);
                var m = RobotMessage.Parse(buffer.AsMemory(0, n));
                if (m.Type == "error") error = true;
            }
        }
        catch (ProtocolException ex) when (ex.Code == "timeout")
        {
            return (error, false);   // the host left a recoverable error's connection open
        }
    }
}

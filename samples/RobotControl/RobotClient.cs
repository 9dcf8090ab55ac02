using System.Diagnostics;
using System.Net.Sockets;
using MoeModal.Plugins.Robotics.Protocol;

namespace RobotControl;

/// <summary>
/// One robot's connection to the host (docs/robot-protocol.md), with blocking socket calls: a
/// robot's control loop runs on its own thread and waits for its action in the kernel, so the
/// measured round trip is the host's and the network's, not a thread pool's.
/// </summary>
public sealed class RobotClient : IDisposable
{
    private readonly TcpClient _tcp;
    private readonly Socket _socket;
    private readonly MessageWriter _writer = new();
    private readonly byte[] _header = new byte[4];
    private byte[] _buffer = new byte[4096];
    private readonly TimeSpan _timeout;

    private RobotClient(TcpClient tcp, TimeSpan timeout)
    {
        _tcp = tcp;
        _socket = tcp.Client;
        _timeout = timeout;
        _socket.SendTimeout = (int)timeout.TotalMilliseconds;
    }

    public RobotMessage? Welcome { get; private set; }

    public static RobotClient Connect(string host, int port, string task, string variant, int obsDim, int actDim, string name, TimeSpan timeout)
    {
        var tcp = new TcpClient { NoDelay = true };
        try
        {
            if (!tcp.ConnectAsync(host, port).Wait(timeout)) throw new IOException($"no connection to {host}:{port} within {timeout.TotalSeconds:F0} s");
            var c = new RobotClient(tcp, timeout);
            c.Send(c._writer.Frame(("type", "hello"), ("version", 1), ("task", task), ("variant", variant),
                ("obs_dim", obsDim), ("act_dim", actDim), ("robot", name)));
            var reply = c.Receive();
            if (reply.Type != "welcome")
                throw new IOException($"host refused {task}/{variant}: {reply.Extra.GetValueOrDefault("code")}: {reply.Extra.GetValueOrDefault("message")}");
            c.Welcome = reply;
            return c;
        }
        catch (AggregateException ex) when (ex.InnerException is SocketException se)
        {
            tcp.Dispose();
            throw new IOException($"cannot connect to {host}:{port}: {se.Message}", se);
        }
        catch
        {
            tcp.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Sends one observation and waits for its action. Returns the action, whether it was the safe
    /// action, the round trip and the host's own time for the step (its <c>infer_us</c>; NaN if absent).
    /// </summary>
    public (float[] Action, bool Safe, double RoundTripMs, double HostMs) Step(long seq, double t, float[] obs)
    {
        var frame = _writer.Frame(("type", "obs"), ("seq", seq), ("t", t), ("obs", obs));
        long start = Stopwatch.GetTimestamp();
        Send(frame);
        var reply = Receive();
        double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        if (reply.Type == "error")
            throw new IOException($"host error {reply.Extra.GetValueOrDefault("code")}: {reply.Extra.GetValueOrDefault("message")}");
        if (reply.Type != "act" || reply.Seq != seq || reply.Action is null)
            throw new IOException($"expected act for seq {seq}, got {reply.Type} seq {reply.Seq}");
        double host = reply.Extra.GetValueOrDefault("infer_us") is { } us and (long or ulong or int or uint or double)
            ? Convert.ToDouble(us, System.Globalization.CultureInfo.InvariantCulture) / 1000 : double.NaN;
        return (reply.Action, reply.Safe ?? false, ms, host);
    }

    public void Close()
    {
        try
        {
            Send(_writer.Frame(("type", "close"), ("reason", "episode over")));
            Receive();   // the host's own close
        }
        catch (Exception ex) when (ex is IOException or SocketException or ProtocolException)
        {
        }
    }

    private void Send(ReadOnlyMemory<byte> frame) => _socket.Send(frame.Span);

    private RobotMessage Receive()
    {
        int n = Frames.Read(_socket, _header, Grow, Frames.DefaultMaxFrame, _timeout, _timeout);
        if (n < 0) throw new IOException("the host closed the connection");
        return RobotMessage.Parse(_buffer.AsMemory(0, n));
    }

    private Memory<byte> Grow(int n)
    {
        if (_buffer.Length < n) _buffer = new byte[n];
        return _buffer;
    }

    public void Dispose() => _tcp.Dispose();
}

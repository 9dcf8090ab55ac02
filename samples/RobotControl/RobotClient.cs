using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using MoeModal.Plugins.Robotics.Protocol;

namespace RobotControl;

/// <summary>One robot's connection to the host (docs/robot-protocol.md).</summary>
public sealed class RobotClient : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;
    private readonly MessageWriter _writer = new();
    private readonly byte[] _header = new byte[4];
    private byte[] _buffer = new byte[4096];
    private readonly TimeSpan _timeout;

    private RobotClient(TcpClient tcp, TimeSpan timeout)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
        _timeout = timeout;
    }

    public RobotMessage? Welcome { get; private set; }

    public static async Task<RobotClient> ConnectAsync(string host, int port, string task, string variant, int obsDim, int actDim,
        string name, TimeSpan timeout, CancellationToken ct)
    {
        var tcp = new TcpClient { NoDelay = true };
        try
        {
            using var connect = CancellationTokenSource.CreateLinkedTokenSource(ct);
            connect.CancelAfter(timeout);
            await tcp.ConnectAsync(host, port, connect.Token);
            var c = new RobotClient(tcp, timeout);
            await c.SendAsync(c._writer.Frame(("type", "hello"), ("version", 1), ("task", task), ("variant", variant),
                ("obs_dim", obsDim), ("act_dim", actDim), ("robot", name)), ct);
            var reply = await c.ReceiveAsync(ct);
            if (reply.Type != "welcome")
                throw new IOException($"host refused {task}/{variant}: {reply.Extra.GetValueOrDefault("code")}: {reply.Extra.GetValueOrDefault("message")}");
            c.Welcome = reply;
            return c;
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
    public async Task<(float[] Action, bool Safe, double RoundTripMs, double HostMs)> StepAsync(long seq, double t, float[] obs, CancellationToken ct)
    {
        long start = Stopwatch.GetTimestamp();
        await SendAsync(_writer.Frame(("type", "obs"), ("seq", seq), ("t", t), ("obs", obs)), ct);
        var reply = await ReceiveAsync(ct);
        double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        if (reply.Type == "error")
            throw new IOException($"host error {reply.Extra.GetValueOrDefault("code")}: {reply.Extra.GetValueOrDefault("message")}");
        if (reply.Type != "act" || reply.Seq != seq || reply.Action is null)
            throw new IOException($"expected act for seq {seq}, got {reply.Type} seq {reply.Seq}");
        double host = reply.Extra.GetValueOrDefault("infer_us") is { } us and (long or ulong or int or uint or double)
            ? Convert.ToDouble(us, System.Globalization.CultureInfo.InvariantCulture) / 1000 : double.NaN;
        return (reply.Action, reply.Safe ?? false, ms, host);
    }

    public async Task CloseAsync(CancellationToken ct)
    {
        try
        {
            await SendAsync(_writer.Frame(("type", "close"), ("reason", "episode over")), ct);
        }
        catch (IOException)
        {
        }
    }

    private async Task SendAsync(ReadOnlyMemory<byte> frame, CancellationToken ct) => await _stream.WriteAsync(frame, ct);

    private async Task<RobotMessage> ReceiveAsync(CancellationToken ct)
    {
        int n = await Frames.ReadAsync(_stream, _header, Grow, Frames.DefaultMaxFrame, _timeout, _timeout, ct);
        if (n < 0) throw new IOException("the host closed the connection");
        return RobotMessage.Parse(_buffer.AsMemory(0, n));
    }

    private Memory<byte> Grow(int n)
    {
        if (_buffer.Length < n) _buffer = new byte[n];
        return _buffer;
    }

    public ValueTask DisposeAsync()
    {
        _tcp.Dispose();
        return ValueTask.CompletedTask;
    }
}

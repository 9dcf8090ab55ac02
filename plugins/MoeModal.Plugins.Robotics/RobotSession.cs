using System.Buffers;
using System.Diagnostics;
using System.Net.Sockets;
using MoeModal.Abstractions;
using MoeModal.Plugins.Robotics.Protocol;

namespace MoeModal.Plugins.Robotics;

/// <summary>
/// One robot's connection, served by its own thread: hello, then observations until close.
/// Inference runs on this thread; a timer answers with the safe action when it misses the
/// deadline (the late result is then dropped). Everything a peer can do wrong ends here, as an
/// error frame or a closed socket.
/// </summary>
internal sealed class RobotSession(RobotServer server, int id, TcpClient client)
{
    private readonly RobotServerOptions _o = server.Options;
    private readonly Socket _socket = client.Client;
    private readonly MessageWriter _writer = new();
    private readonly object _sendLock = new();
    private readonly byte[] _header = new byte[4];
    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(1024);
    private long _lastSeq = -1;
    private int _consecutiveErrors;

    public TaskCompletionSource Finished { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Ends the session from another thread (host stopping): its blocking wait returns.</summary>
    public void Abort()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
        _socket.Close();
    }

    /// <summary>Answers a connection the host has no room for, then closes it.</summary>
    public static void Refuse(TcpClient client, RobotServerOptions o)
    {
        using var _ = client;
        try
        {
            client.Client.SendTimeout = 1000;
            client.Client.Send(new MessageWriter().Frame(("type", "error"), ("code", "busy"),
                ("message", $"the host serves at most {o.MaxConnections} robots"), ("fatal", true)).Span);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
    }

    public void Run()
    {
        using var _ = client;
        try
        {
            _socket.NoDelay = true;
            _socket.SendTimeout = (int)Math.Clamp(_o.FrameTimeout.TotalMilliseconds, 1, int.MaxValue);
            Loop();
        }
        catch (ProtocolException ex)
        {
            server.Stats.Error();
            _o.Log?.Invoke($"serve-robot: session {id}: {ex.Code}: {ex.Message}");
            var entries = new List<(string, object?)> { ("type", "error"), ("code", ex.Code), ("message", ex.Message), ("fatal", true) };
            if (ex.Seq is long seq) entries.Add(("seq", seq));
            if (ex.Tasks is { } tasks) entries.Add(("tasks", tasks));
            TrySend([.. entries]);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            // The peer went away, stopped reading, or the host is stopping.
        }
        catch (Exception ex)
        {
            server.Stats.Error();
            _o.Log?.Invoke($"serve-robot: session {id}: internal error: {ex}");
            TrySend(("type", "error"), ("code", "internal"), ("message", ex.Message), ("fatal", true));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(_buffer);
        }
    }

    private void Loop()
    {
        var task = Hello();
        while (true)
        {
            int n = Frames.Read(_socket, _header, Buffer, _o.MaxFrameBytes, _o.IdleTimeout, _o.FrameTimeout);
            if (n < 0) return;
            RobotMessage m;
            try
            {
                m = RobotMessage.Parse(_buffer.AsMemory(0, n));
            }
            catch (ProtocolException ex) when (!ex.Fatal)
            {
                Recoverable(ex);
                continue;
            }
            switch (m.Type)
            {
                case "obs":
                    Observation(task, m);
                    break;
                case "close":
                    Send(("type", "close"), ("reason", "bye"));
                    return;
                case "stats":
                    var s = server.Stats;
                    Send(("type", "stats"), ("steps", s.Steps), ("deadline_misses", s.DeadlineMisses), ("active", s.Active),
                        ("sessions", s.Sessions), ("errors", s.Errors));
                    break;
                default:
                    Recoverable(new ProtocolException("bad_message", $"unexpected message type '{Trim(m.Type)}' (obs, close, stats)", false));
                    break;
            }
        }
    }

    private Memory<byte> Buffer(int length)
    {
        if (_buffer.Length < length)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = ArrayPool<byte>.Shared.Rent(length);
        }
        return _buffer;
    }

    private RobotTask Hello()
    {
        int n = Frames.Read(_socket, _header, Buffer, _o.MaxFrameBytes, _o.IdleTimeout, _o.FrameTimeout);
        if (n < 0) throw new IOException("closed before hello");
        RobotMessage m;
        try
        {
            m = RobotMessage.Parse(_buffer.AsMemory(0, n));
        }
        catch (ProtocolException ex)
        {
            throw new ProtocolException("bad_hello", $"the first frame must be a hello map: {ex.Message}", fatal: true);
        }
        if (m.Type != "hello") throw new ProtocolException("bad_hello", $"the first frame must be a hello, not '{Trim(m.Type)}'", fatal: true);
        if (m.Version != 1) throw new ProtocolException("bad_hello", $"protocol version {m.Version?.ToString() ?? "(missing)"} is not supported (1)", fatal: true);
        if (m.Task is null || m.Variant is null) throw new ProtocolException("bad_hello", "hello needs 'task' and 'variant'", fatal: true);
        var catalog = server.Processor.Catalog;
        var task = catalog.Find(m.Task, m.Variant)
            ?? throw new ProtocolException("unknown_task", $"unknown task {Trim(m.Task)}/{Trim(m.Variant)}; known: {string.Join(", ", catalog.All.Select(t => $"{t.Task}/{t.Variant}"))}", fatal: true)
            {
                Tasks = [.. catalog.All.Select(t => $"{t.Task}/{t.Variant}")],
            };
        if (m.ObsDim != task.ObsDim || m.ActDim != task.ActDim)
            throw new ProtocolException("bad_hello", $"{task.Task}/{task.Variant} has obs_dim {task.ObsDim} and act_dim {task.ActDim}; hello says {m.ObsDim?.ToString() ?? "?"} and {m.ActDim?.ToString() ?? "?"}", fatal: true);
        _o.Log?.Invoke($"serve-robot: session {id}: {Trim(m.Robot ?? "robot")} runs {task.Task}/{task.Variant}");
        Send(("type", "welcome"), ("version", 1), ("session", id), ("task", task.Task), ("variant", task.Variant),
            ("obs_layout", task.ObsLayout), ("act_layout", task.ActLayout), ("act_low", task.ActLow), ("act_high", task.ActHigh),
            ("safe_action", new float[task.ActDim]), ("deadline_ms", _o.Deadline.TotalMilliseconds), ("dt", catalog.Dt),
            ("max_frame", _o.MaxFrameBytes));
        return task;
    }

    /// <summary>One step; claimed once, by the action or by the deadline timer, whichever comes first.</summary>
    private sealed class Step(long seq, double t, int actDim, long start)
    {
        private int _claimed;
        public long Seq { get; } = seq;
        public double T { get; } = t;
        public int ActDim { get; } = actDim;
        public long Start { get; } = start;
        public bool TryClaim() => Interlocked.Exchange(ref _claimed, 1) == 0;
    }

    private void Observation(RobotTask task, RobotMessage m)
    {
        if (m.Seq is not long seq) { Recoverable(new ProtocolException("bad_observation", "obs needs 'seq'", false)); return; }
        if (seq <= _lastSeq) { Recoverable(new ProtocolException("bad_sequence", $"seq {seq} is not after {_lastSeq}", false, seq)); return; }
        if (m.Obs is null || m.Obs.Length != task.ObsDim)
        {
            Recoverable(new ProtocolException("bad_observation", $"obs must hold {task.ObsDim} numbers, got {m.Obs?.Length.ToString() ?? "none"}", false, seq));
            return;
        }
        Dictionary<string, Tensor> inputs;
        try
        {
            inputs = server.Processor.Inputs(task, m.Obs);
        }
        catch (InputException ex)
        {
            Recoverable(new ProtocolException("bad_observation", ex.Message, false, seq));
            return;
        }
        _lastSeq = seq;
        _consecutiveErrors = 0;

        var step = new Step(seq, m.T ?? 0.0, task.ActDim, Stopwatch.GetTimestamp());
        float[] action;
        using (new Timer(OnDeadline, step, _o.Deadline, Timeout.InfiniteTimeSpan))
        {
            try
            {
                action = server.Processor.Action(task, server.Infer(inputs));
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                server.Stats.Error();
                _o.Log?.Invoke($"serve-robot: session {id}: inference failed: {ex.Message}");
                if (step.TryClaim()) Reply(step, new float[task.ActDim], safe: true);
                return;
            }
        }
        // Lost the race: the deadline timer has already sent the safe action for this step.
        if (step.TryClaim()) Reply(step, action, safe: false);
    }

    private void OnDeadline(object? state)
    {
        var step = (Step)state!;
        if (!step.TryClaim()) return;
        try
        {
            Reply(step, new float[step.ActDim], safe: true);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            // The session thread sees the broken connection on its next read or send.
        }
    }

    private void Reply(Step step, float[] action, bool safe)
    {
        if (safe) server.Stats.Miss();
        server.Stats.Step();
        long us = (long)Stopwatch.GetElapsedTime(step.Start).TotalMicroseconds;
        Send(("type", "act"), ("seq", step.Seq), ("t", step.T), ("action", action), ("safe", safe), ("infer_us", us));
    }

    private void Recoverable(ProtocolException ex)
    {
        server.Stats.Error();
        if (++_consecutiveErrors > _o.MaxConsecutiveErrors)
            throw new ProtocolException(ex.Code, $"{_consecutiveErrors} errors in a row; closing ({ex.Message})", fatal: true, ex.Seq);
        var entries = new List<(string, object?)> { ("type", "error"), ("code", ex.Code), ("message", ex.Message), ("fatal", false) };
        if (ex.Seq is long s) entries.Add(("seq", s));
        Send([.. entries]);
    }

    /// <summary>Encodes and sends one frame; the lock keeps the deadline timer's frame and the session's apart.</summary>
    private void Send(params (string, object?)[] entries)
    {
        lock (_sendLock)
        {
            try
            {
                _socket.Send(_writer.Frame(entries).Span);
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
            {
                throw new IOException("the robot stopped reading");
            }
        }
    }

    private void TrySend(params (string, object?)[] entries)
    {
        try
        {
            Send(entries);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
        }
    }

    private static string Trim(string s) => s.Length <= 64 ? s : s[..64] + "…";
}

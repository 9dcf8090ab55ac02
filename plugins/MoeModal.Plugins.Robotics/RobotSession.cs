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
    private float[] _safeAction = [];   // the task's, set by hello
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
            Log($"{ex.Code}: {ex.Message}");
            var entries = new List<(string, object?)> { ("type", "error"), ("code", ex.Code), ("message", ex.Message), ("fatal", true) };
            if (ex.Seq is long seq) entries.Add(("seq", seq));
            if (ex.Tasks is { } tasks) entries.Add(("tasks", tasks));
            if (TrySend([.. entries])) Linger();
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            // The peer went away, stopped reading, or the host is stopping.
        }
        catch (Exception ex)
        {
            server.Stats.Error();
            Log($"internal error: {ex}");
            if (TrySend(("type", "error"), ("code", "internal"), ("message", ex.Message), ("fatal", true))) Linger();
        }
        finally
        {
            if (_buffer.Length > 0) ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
        }
    }

    /// <summary>
    /// After a fatal error frame: close our side, then read and drop what the peer still sends
    /// (at most 64 KiB, 1 s) before closing, so the kernel ends with FIN, not a reset that could
    /// make the peer's stack drop the error frame unread.
    /// </summary>
    private void Linger()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Send);
            var sink = new byte[4096];
            long until = Stopwatch.GetTimestamp() + Stopwatch.Frequency;
            for (int total = 0; total < 65536 && Stopwatch.GetTimestamp() < until;)
            {
                if (!_socket.Poll(100_000, SelectMode.SelectRead)) continue;
                int n = _socket.Receive(sink);
                if (n == 0) break;
                total += n;
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
    }

    /// <summary>One line to the host's log; a failing log sink never takes the session (or the process) down.</summary>
    private void Log(string line)
    {
        try
        {
            _o.Log?.Invoke($"serve-robot: session {id}: {line}");
        }
        catch (Exception)
        {
        }
    }

    private void Loop()
    {
        var task = Hello();
        while (true)
        {
            int n = Frames.Read(_socket, _header, Buffer, _o.MaxFrameBytes, _o.IdleTimeout, _o.FrameTimeout);
            long received = Stopwatch.GetTimestamp();   // the deadline runs from here
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
                    Observation(task, m, received);
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
                    Recoverable(new ProtocolException("bad_message", $"unexpected message type '{Trim(m.Type)}' (obs, close, stats)", false, m.Seq));
                    break;
            }
        }
    }

    private Memory<byte> Buffer(int length)
    {
        if (_buffer.Length < length)
        {
            var old = _buffer;
            _buffer = [];
            if (old.Length > 0) ArrayPool<byte>.Shared.Return(old);
            _buffer = ArrayPool<byte>.Shared.Rent(length);
        }
        return _buffer;
    }

    private RobotTask Hello()
    {
        // A connection that does not say hello promptly holds a slot for nothing: FrameTimeout, not IdleTimeout.
        int n = Frames.Read(_socket, _header, Buffer, _o.MaxFrameBytes, _o.FrameTimeout, _o.FrameTimeout);
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
        Log($"{Trim(m.Robot ?? "robot")} runs {task.Task}/{task.Variant}");
        Send(("type", "welcome"), ("version", 1), ("session", id), ("task", task.Task), ("variant", task.Variant),
            ("obs_layout", task.ObsLayout), ("act_layout", task.ActLayout), ("act_low", task.ActLow), ("act_high", task.ActHigh),
            ("safe_action", _safeAction = SafeAction(task)), ("deadline_ms", _o.Deadline.TotalMilliseconds), ("dt", catalog.Dt),
            ("max_frame", _o.MaxFrameBytes));
        return task;
    }

    /// <summary>
    /// One step; claimed once, under the send lock, by the action or by the deadline timer,
    /// whichever comes first (so replies leave in step order).
    /// </summary>
    private sealed class Step(long seq, double t, long start)
    {
        private bool _claimed;
        public long Seq { get; } = seq;
        public double T { get; } = t;
        public long Start { get; } = start;
        public Timer? Timer { get; set; }

        /// <summary>Call with the send lock held.</summary>
        public bool TryClaim()
        {
            if (_claimed) return false;
            _claimed = true;
            return true;
        }
    }

    /// <summary>The documented safe action: zero, clipped into the task's limits.</summary>
    private static float[] SafeAction(RobotTask task)
    {
        var a = new float[task.ActDim];
        for (int i = 0; i < a.Length; i++) a[i] = Math.Clamp(0f, task.ActLow[i], task.ActHigh[i]);
        return a;
    }

    private void Observation(RobotTask task, RobotMessage m, long received)
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

        var step = new Step(seq, m.T ?? 0.0, received);
        float[] action;
        using (step.Timer = new Timer(OnDeadline, step, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan))
        {
            Arm(step);
            try
            {
                action = server.Processor.Action(task, server.Infer(inputs));
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // The robot must keep moving: the safe action, marked safe, counted as a miss and an error.
                server.Stats.Error();
                Log($"inference failed: {ex.Message}");
                action = _safeAction;
                lock (_sendLock)
                    if (step.TryClaim()) Reply(step, action, safe: true);
                return;
            }
        }
        lock (_sendLock)
            if (step.TryClaim()) Reply(step, action, safe: false);   // else the timer already sent the safe action
    }

    /// <summary>
    /// The deadline passed first: send the safe action from this thread-pool thread, but never
    /// block here (a pool thread stuck in a send would delay every other robot's timer): if the
    /// lock is busy or the socket cannot take the frame now, the robot is not reading and the
    /// session is ended instead.
    /// </summary>
    private void OnDeadline(object? state)
    {
        var step = (Step)state!;
        // Timers run on a coarse clock (on Linux the tick can be 4 ms): a callback may come
        // before the deadline. Then it is only re-armed for the rest.
        if (Stopwatch.GetElapsedTime(step.Start) < _o.Deadline)
        {
            Arm(step);
            return;
        }
        try
        {
            if (!Monitor.TryEnter(_sendLock, 1)) return;
            try
            {
                if (!step.TryClaim()) return;
                if (!_socket.Poll(0, SelectMode.SelectWrite)) { Abort(); return; }
                Reply(step, _safeAction, safe: true);
            }
            finally
            {
                Monitor.Exit(_sendLock);
            }
        }
        catch (Exception)
        {
            // Whatever went wrong, the connection is not usable: end it (the session thread sees that).
            Abort();
        }
    }

    /// <summary>Arms the step's timer for what is left of its deadline (at least 1 ms, the timer's resolution).</summary>
    private void Arm(Step step)
    {
        var left = _o.Deadline - Stopwatch.GetElapsedTime(step.Start);
        try
        {
            step.Timer?.Change(left > TimeSpan.FromMilliseconds(1) ? left : TimeSpan.FromMilliseconds(1), Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
            // The step is over.
        }
    }

    /// <summary>Call with the send lock held.</summary>
    private void Reply(Step step, float[] action, bool safe)
    {
        long us = (long)Stopwatch.GetElapsedTime(step.Start).TotalMicroseconds;
        SendLocked(("type", "act"), ("seq", step.Seq), ("t", step.T), ("action", action), ("safe", safe), ("infer_us", us));
        if (safe) server.Stats.Miss();
        server.Stats.Step();
    }

    private void Recoverable(ProtocolException ex)
    {
        if (++_consecutiveErrors > _o.MaxConsecutiveErrors)   // counted once, where the fatal error is handled
            throw new ProtocolException(ex.Code, $"{_consecutiveErrors} errors in a row; closing ({ex.Message})", fatal: true, ex.Seq);
        server.Stats.Error();
        var entries = new List<(string, object?)> { ("type", "error"), ("code", ex.Code), ("message", ex.Message), ("fatal", false) };
        if (ex.Seq is long s) entries.Add(("seq", s));
        Send([.. entries]);
    }

    /// <summary>Encodes and sends one frame; the lock keeps the deadline timer's frame and the session's apart.</summary>
    private void Send(params (string, object?)[] entries)
    {
        lock (_sendLock) SendLocked(entries);
    }

    /// <summary>
    /// Call with the send lock held. A send that fails or times out may have left part of a frame
    /// on the wire, so the connection is ended: the peer's framing could not be trusted after it.
    /// </summary>
    private void SendLocked(params (string, object?)[] entries)
    {
        try
        {
            _socket.Send(_writer.Frame(entries).Span);
        }
        catch (SocketException ex)
        {
            Abort();
            throw new IOException(ex.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock ? "the robot stopped reading" : ex.Message, ex);
        }
    }

    private bool TrySend(params (string, object?)[] entries)
    {
        try
        {
            Send(entries);
            return true;
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            return false;
        }
    }

    private static string Trim(string s) => ProtocolException.Printable(s);
}

using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using MoeModal.Abstractions;
using MoeModal.Plugins.Robotics.Protocol;

namespace MoeModal.Plugins.Robotics;

/// <summary>Counters the server keeps; read at any time.</summary>
public sealed class RobotServerStats
{
    private long _sessions, _active, _steps, _misses, _errors, _refused;
    public long Sessions => Interlocked.Read(ref _sessions);
    public long Active => Interlocked.Read(ref _active);
    public long Steps => Interlocked.Read(ref _steps);
    public long DeadlineMisses => Interlocked.Read(ref _misses);
    public long Errors => Interlocked.Read(ref _errors);
    public long Refused => Interlocked.Read(ref _refused);
    internal void Opened() { Interlocked.Increment(ref _sessions); Interlocked.Increment(ref _active); }
    internal void Closed() => Interlocked.Decrement(ref _active);
    internal void Step() => Interlocked.Increment(ref _steps);
    internal void Miss() => Interlocked.Increment(ref _misses);
    internal void Error() => Interlocked.Increment(ref _errors);
    internal void Refuse() => Interlocked.Increment(ref _refused);
}

/// <summary>
/// Serves a robot policy over TCP (docs/robot-protocol.md). Every connection runs its own loop;
/// a misbehaving client gets an error frame or is closed, and nothing it sends reaches the others.
/// <paramref name="infer"/> runs the policy and must be thread-safe.
/// </summary>
public sealed class RobotServer(RobotProcessor processor, Func<IReadOnlyDictionary<string, Tensor>, InferenceOutput> infer,
    RobotServerOptions? options = null) : IAsyncDisposable
{
    private readonly RobotServerOptions _options = options ?? new RobotServerOptions();
    private readonly RobotProcessor _processor = processor;
    private readonly Func<IReadOnlyDictionary<string, Tensor>, InferenceOutput> _infer = infer;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _sessions = [];
    private TcpListener? _listener;
    private Task? _acceptLoop;
    private int _nextSession;

    public RobotServerStats Stats { get; } = new();

    public IPEndPoint? LocalEndPoint => _listener?.LocalEndpoint as IPEndPoint;

    /// <summary>Warms the policy up (every sub-task, through the same path as a step), then listens.</summary>
    public void Start(IPEndPoint endpoint)
    {
        WarmUp();
        _listener = new TcpListener(endpoint);
        _listener.Start(backlog: 128);
        _acceptLoop = AcceptLoop(_stop.Token);
    }

    /// <summary>
    /// Runs every sub-task a few times on a zero observation, on the thread pool like a real step,
    /// so the first robots do not pay session start-up and JIT inside their deadline.
    /// </summary>
    public void WarmUp(int rounds = 3)
    {
        for (int r = 0; r < rounds; r++)
            foreach (var task in _processor.Catalog.All)
                Task.Run(() => _processor.Action(task, _infer(_processor.Inputs(task, new float[task.ObsDim])))).GetAwaiter().GetResult();
    }

    /// <summary>Runs until <paramref name="ct"/> is cancelled.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        try
        {
            await Task.Delay(Timeout.Infinite, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task AcceptLoop(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener!.AcceptTcpClientAsync(ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (SocketException ex)
            {
                _options.Log?.Invoke($"serve-robot: accept failed: {ex.Message}");
                continue;
            }
            int id = Interlocked.Increment(ref _nextSession);
            var task = Serve(client, id, ct);
            lock (_sessions)
            {
                _sessions.RemoveAll(t => t.IsCompleted);
                _sessions.Add(task);
            }
        }
    }

    private async Task Serve(TcpClient client, int id, CancellationToken ct)
    {
        await Task.Yield();
        using var _ = client;
        client.NoDelay = true;
        var stream = client.GetStream();
        var writer = new MessageWriter();
        if (Stats.Active >= _options.MaxConnections)
        {
            Stats.Refuse();
            await TrySend(stream, writer.Frame(("type", "error"), ("code", "busy"), ("message", $"the host serves at most {_options.MaxConnections} robots"), ("fatal", true)), ct);
            return;
        }
        Stats.Opened();
        var session = new Session(this, id, stream, writer);
        try
        {
            await session.Run(ct).ConfigureAwait(false);
        }
        catch (ProtocolException ex)
        {
            Stats.Error();
            _options.Log?.Invoke($"serve-robot: session {id}: {ex.Code}: {ex.Message}");
            var entries = new List<(string, object?)> { ("type", "error"), ("code", ex.Code), ("message", ex.Message), ("fatal", true) };
            if (ex.Seq is long seq) entries.Add(("seq", seq));
            if (ex.Tasks is { } tasks) entries.Add(("tasks", tasks));
            await TrySend(stream, writer.Frame([.. entries]), ct);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // The peer went away or the host is stopping.
        }
        catch (Exception ex)
        {
            Stats.Error();
            _options.Log?.Invoke($"serve-robot: session {id}: internal error: {ex}");
            await TrySend(stream, writer.Frame(("type", "error"), ("code", "internal"), ("message", ex.Message), ("fatal", true)), ct);
        }
        finally
        {
            Stats.Closed();
        }
    }

    private static async Task TrySend(Stream stream, ReadOnlyMemory<byte> frame, CancellationToken ct)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(1));
            await stream.WriteAsync(frame, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
        }
    }

    /// <summary>One robot's connection: hello, then observations until close.</summary>
    private sealed class Session(RobotServer server, int id, NetworkStream stream, MessageWriter writer)
    {
        private readonly RobotServerOptions _o = server._options;
        private byte[] _buffer = ArrayPool<byte>.Shared.Rent(1024);
        private readonly byte[] _header = new byte[4];
        private long _lastSeq = -1;
        private int _consecutiveErrors;
        private Task? _lateInference;

        public async Task Run(CancellationToken ct)
        {
            try
            {
                var task = await Hello(ct).ConfigureAwait(false);
                while (true)
                {
                    int n = await Frames.ReadAsync(stream, _header, Buffer, _o.MaxFrameBytes, _o.IdleTimeout, _o.FrameTimeout, ct).ConfigureAwait(false);
                    if (n < 0) return;
                    RobotMessage m;
                    try
                    {
                        m = RobotMessage.Parse(_buffer.AsMemory(0, n));
                    }
                    catch (ProtocolException ex) when (!ex.Fatal)
                    {
                        await Recoverable(ex, ct).ConfigureAwait(false);
                        continue;
                    }
                    switch (m.Type)
                    {
                        case "obs":
                            await Observation(task, m, ct).ConfigureAwait(false);
                            break;
                        case "close":
                            await Send(writer.Frame(("type", "close"), ("reason", "bye")), ct).ConfigureAwait(false);
                            return;
                        case "stats":
                            await Send(writer.Frame(("type", "stats"), ("steps", server.Stats.Steps), ("deadline_misses", server.Stats.DeadlineMisses),
                                ("active", server.Stats.Active), ("sessions", server.Stats.Sessions), ("errors", server.Stats.Errors)), ct).ConfigureAwait(false);
                            break;
                        default:
                            await Recoverable(new ProtocolException("bad_message", $"unexpected message type '{Trim(m.Type)}' (obs, close, stats)", false), ct).ConfigureAwait(false);
                            break;
                    }
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(_buffer);
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

        private async Task<RobotTask> Hello(CancellationToken ct)
        {
            int n = await Frames.ReadAsync(stream, _header, Buffer, _o.MaxFrameBytes, _o.IdleTimeout, _o.FrameTimeout, ct).ConfigureAwait(false);
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
            var task = server._processor.Catalog.Find(m.Task, m.Variant)
                ?? throw new ProtocolException("unknown_task", $"unknown task {Trim(m.Task)}/{Trim(m.Variant)}; known: {string.Join(", ", server._processor.Catalog.All.Select(t => $"{t.Task}/{t.Variant}"))}", fatal: true)
                {
                    Tasks = [.. server._processor.Catalog.All.Select(t => $"{t.Task}/{t.Variant}")],
                };
            if (m.ObsDim != task.ObsDim || m.ActDim != task.ActDim)
                throw new ProtocolException("bad_hello", $"{task.Task}/{task.Variant} has obs_dim {task.ObsDim} and act_dim {task.ActDim}; hello says {m.ObsDim?.ToString() ?? "?"} and {m.ActDim?.ToString() ?? "?"}", fatal: true);
            _o.Log?.Invoke($"serve-robot: session {id}: {Trim(m.Robot ?? "robot")} runs {task.Task}/{task.Variant}");
            await Send(writer.Frame(
                ("type", "welcome"), ("version", 1), ("session", id), ("task", task.Task), ("variant", task.Variant),
                ("obs_layout", task.ObsLayout), ("act_layout", task.ActLayout), ("act_low", task.ActLow), ("act_high", task.ActHigh),
                ("safe_action", new float[task.ActDim]), ("deadline_ms", _o.Deadline.TotalMilliseconds), ("dt", server._processor.Catalog.Dt),
                ("max_frame", _o.MaxFrameBytes)), ct).ConfigureAwait(false);
            return task;
        }

        private async Task Observation(RobotTask task, RobotMessage m, CancellationToken ct)
        {
            if (m.Seq is not long seq) { await Recoverable(new ProtocolException("bad_observation", "obs needs 'seq'", false), ct).ConfigureAwait(false); return; }
            if (seq <= _lastSeq) { await Recoverable(new ProtocolException("bad_sequence", $"seq {seq} is not after {_lastSeq}", false, seq), ct).ConfigureAwait(false); return; }
            if (m.Obs is null || m.Obs.Length != task.ObsDim)
            {
                await Recoverable(new ProtocolException("bad_observation", $"obs must hold {task.ObsDim} numbers, got {m.Obs?.Length.ToString() ?? "none"}", false, seq), ct).ConfigureAwait(false);
                return;
            }
            Dictionary<string, Tensor> inputs;
            try
            {
                inputs = server._processor.Inputs(task, m.Obs);
            }
            catch (InputException ex)
            {
                await Recoverable(new ProtocolException("bad_observation", ex.Message, false, seq), ct).ConfigureAwait(false);
                return;
            }
            _lastSeq = seq;
            _consecutiveErrors = 0;

            long start = Stopwatch.GetTimestamp();
            float[] action;
            bool safe = false;
            if (_lateInference is { IsCompleted: false })
            {
                // The previous step's inference is still running: do not queue behind it.
                action = new float[task.ActDim];
                safe = true;
            }
            else
            {
                var inference = Task.Run(() => server._processor.Action(task, server._infer(inputs)));
                try
                {
                    action = await inference.WaitAsync(_o.Deadline, ct).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    _lateInference = inference;
                    action = new float[task.ActDim];
                    safe = true;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    server.Stats.Error();
                    _o.Log?.Invoke($"serve-robot: session {id}: inference failed: {ex.Message}");
                    action = new float[task.ActDim];
                    safe = true;
                }
            }
            if (safe) server.Stats.Miss();
            server.Stats.Step();
            long us = (long)Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            await Send(writer.Frame(("type", "act"), ("seq", seq), ("t", m.T ?? 0.0), ("action", action), ("safe", safe), ("infer_us", us)), ct).ConfigureAwait(false);
        }

        private async Task Recoverable(ProtocolException ex, CancellationToken ct)
        {
            server.Stats.Error();
            if (++_consecutiveErrors > _o.MaxConsecutiveErrors)
                throw new ProtocolException(ex.Code, $"{_consecutiveErrors} errors in a row; closing ({ex.Message})", fatal: true, ex.Seq);
            var entries = new List<(string, object?)> { ("type", "error"), ("code", ex.Code), ("message", ex.Message), ("fatal", false) };
            if (ex.Seq is long s) entries.Add(("seq", s));
            await Send(writer.Frame([.. entries]), ct).ConfigureAwait(false);
        }

        private async Task Send(ReadOnlyMemory<byte> frame, CancellationToken ct)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(_o.FrameTimeout);
            try
            {
                await stream.WriteAsync(frame, timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new IOException("the robot stopped reading");
            }
        }

        private static string Trim(string s) => s.Length <= 64 ? s : s[..64] + "…";
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener?.Stop();
        if (_acceptLoop is not null) await _acceptLoop.ConfigureAwait(false);
        Task[] running;
        lock (_sessions) running = [.. _sessions];
        await Task.WhenAll(running).WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        _stop.Dispose();
    }
}

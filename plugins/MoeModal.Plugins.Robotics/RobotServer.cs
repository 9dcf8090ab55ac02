using System.Net;
using System.Net.Sockets;
using MoeModal.Abstractions;
using MoeModal.Plugins.Robotics.Protocol;

namespace MoeModal.Plugins.Robotics;

/// <summary>
/// Serves a robot policy over TCP (docs/robot-protocol.md). Every connection is served by its own
/// thread with blocking socket I/O: an observation wakes that thread straight from the kernel, the
/// policy runs on it and the action goes out from it, with no thread-pool hand-off on the control
/// path. A misbehaving client gets an error frame or is closed, and nothing it sends reaches the
/// others. <paramref name="infer"/> runs the policy and must be thread-safe.
/// </summary>
public sealed class RobotServer(RobotProcessor processor, Func<IReadOnlyDictionary<string, Tensor>, InferenceOutput> infer,
    RobotServerOptions? options = null) : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Dictionary<int, RobotSession> _sessions = [];
    private TcpListener? _listener;
    private Task? _acceptLoop;
    private int _nextSession;

    internal RobotServerOptions Options { get; } = options ?? new RobotServerOptions();
    internal RobotProcessor Processor { get; } = processor;
    internal Func<IReadOnlyDictionary<string, Tensor>, InferenceOutput> Infer { get; } = infer;

    public RobotServerStats Stats { get; } = new();

    public IPEndPoint? LocalEndPoint => _listener?.LocalEndpoint as IPEndPoint;

    /// <summary>Warms the policy up (every sub-task, through the same path as a step), then listens.</summary>
    public void Start(IPEndPoint endpoint)
    {
        WarmUp(Options.WarmUpRounds);
        _listener = new TcpListener(endpoint);
        _listener.Start(backlog: 128);
        _acceptLoop = AcceptLoop(_stop.Token);
    }

    /// <summary>
    /// Runs every sub-task a few times on a zero observation, so the first robots do not pay
    /// session start-up and JIT inside their deadline.
    /// </summary>
    public void WarmUp(int rounds)
    {
        for (int r = 0; r < rounds; r++)
            foreach (var task in Processor.Catalog.All)
                Processor.Action(task, Infer(Processor.Inputs(task, new float[task.ObsDim])));
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
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                if (ct.IsCancellationRequested) return;
                Log($"accept failed: {ex.Message}");
                await Task.Delay(100, CancellationToken.None).ConfigureAwait(false);   // e.g. out of file descriptors: do not spin
                continue;
            }
            int id = Interlocked.Increment(ref _nextSession);
            if (Stats.Active >= Options.MaxConnections)
            {
                Stats.Refuse();
                _ = Task.Run(() => RobotSession.Refuse(client, Options));
                continue;
            }
            StartSession(id, client);
        }
    }

    /// <summary>Starts the connection's thread; if that fails (thread or memory limits), the connection is closed and the host goes on.</summary>
    private void StartSession(int id, TcpClient client)
    {
        Stats.Opened();
        RobotSession? session = null;
        try
        {
            session = new RobotSession(this, id, client);
            lock (_sessions) _sessions[id] = session;
            var s = session;
            var thread = new Thread(() =>
            {
                try
                {
                    s.Run();
                }
                finally
                {
                    Stats.Closed();
                    lock (_sessions) _sessions.Remove(id);
                    s.Finished.TrySetResult();
                }
            }, maxStackSize: 256 * 1024)
            {
                IsBackground = true,
                Name = $"robot-session-{id}",
            };
            thread.Start();
        }
        catch (Exception ex) when (ex is OutOfMemoryException or ThreadStartException or InvalidOperationException)
        {
            Log($"cannot serve connection {id}: {ex.Message}");
            Stats.Closed();
            lock (_sessions) _sessions.Remove(id);
            session?.Finished.TrySetResult();
            client.Dispose();
        }
    }

    private void Log(string line)
    {
        try
        {
            Options.Log?.Invoke($"serve-robot: {line}");
        }
        catch (Exception)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener?.Stop();
        if (_acceptLoop is not null) await _acceptLoop.ConfigureAwait(false);
        RobotSession[] running;
        lock (_sessions) running = [.. _sessions.Values];
        foreach (var s in running) s.Abort();
        var all = Task.WhenAll(running.Select(s => s.Finished.Task));
        if (await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(5))).ConfigureAwait(false) != all)
        {
            // A session is still inside the policy (a slow or hung model call). Its socket is closed,
            // so it ends as soon as the call returns; the model must outlive it, so wait.
            Log($"waiting for {running.Count(s => !s.Finished.Task.IsCompleted)} session(s) still running the policy");
            await all.ConfigureAwait(false);
        }
        _stop.Dispose();
    }
}

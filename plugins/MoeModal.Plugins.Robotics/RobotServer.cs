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
                Options.Log?.Invoke($"serve-robot: accept failed: {ex.Message}");
                continue;
            }
            int id = Interlocked.Increment(ref _nextSession);
            if (Stats.Active >= Options.MaxConnections)
            {
                Stats.Refuse();
                _ = Task.Run(() => RobotSession.Refuse(client, Options));
                continue;
            }
            Stats.Opened();
            var session = new RobotSession(this, id, client);
            lock (_sessions) _sessions[id] = session;
            var thread = new Thread(() =>
            {
                try
                {
                    session.Run();
                }
                finally
                {
                    Stats.Closed();
                    lock (_sessions) _sessions.Remove(id);
                    session.Finished.TrySetResult();
                }
            }, maxStackSize: 256 * 1024)
            {
                IsBackground = true,
                Name = $"robot-session-{id}",
            };
            thread.Start();
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
        await Task.WhenAll(running.Select(s => s.Finished.Task)).WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        _stop.Dispose();
    }
}

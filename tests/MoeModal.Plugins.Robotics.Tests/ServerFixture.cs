using System.Net;
using System.Net.Sockets;
using MoeModal.Core.Execution;
using MoeModal.Plugins.Robotics.Protocol;
using MoeModal.Testing;

namespace MoeModal.Plugins.Robotics.Tests;

/// <summary>A real server on loopback over a real ONNX policy (the code-built test package).</summary>
public sealed class ServerFixture : IAsyncDisposable
{
    private readonly RobotTestPackage _package = new();

    public ServerFixture(RobotServerOptions? options = null, Func<MoeModel, Func<IReadOnlyDictionary<string, Abstractions.Tensor>, Abstractions.InferenceOutput>>? wrap = null)
    {
        Model = MoeModel.Load(_package.Dir, new LoadOptions { IntraOpThreads = 1, ExpertParallelism = 1 });
        Processor = (RobotProcessor)new RobotModule().Bind(Model.Info);
        var infer = wrap?.Invoke(Model) ?? (inputs => Model.Run(inputs));
        Server = new RobotServer(Processor, infer, options);
        Server.Start(new IPEndPoint(IPAddress.Loopback, 0));
    }

    public MoeModel Model { get; }
    public RobotProcessor Processor { get; }
    public RobotServer Server { get; }
    public int Port => Server.LocalEndPoint!.Port;

    public async Task<RawClient> Connect()
    {
        var c = new TcpClient { NoDelay = true };
        await c.ConnectAsync(IPAddress.Loopback, Port);
        return new RawClient(c);
    }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        Model.Dispose();
        _package.Dispose();
    }
}

/// <summary>A client that can send anything, byte by byte if asked.</summary>
public sealed class RawClient(TcpClient tcp) : IDisposable
{
    private readonly NetworkStream _s = tcp.GetStream();
    private readonly MessageWriter _w = new();

    public Task Send(params (string, object?)[] entries) => SendRaw(_w.Frame(entries).ToArray());

    public async Task SendRaw(byte[] bytes, int chunk = int.MaxValue)
    {
        for (int i = 0; i < bytes.Length; i += chunk)
        {
            await _s.WriteAsync(bytes.AsMemory(i, Math.Min(chunk, bytes.Length - i)));
            await _s.FlushAsync();
        }
    }

    /// <summary>The next frame, or null when the host closed the connection.</summary>
    public Task<RobotMessage?> Receive(int timeoutMs = 10_000) => Task.Run(() =>
    {
        var buffer = new byte[Frames.DefaultMaxFrame];
        try
        {
            int n = Frames.Read(tcp.Client, new byte[4], _ => buffer, Frames.DefaultMaxFrame,
                TimeSpan.FromMilliseconds(timeoutMs), TimeSpan.FromMilliseconds(timeoutMs));
            return n < 0 ? null : RobotMessage.Parse(buffer.AsMemory(0, n));
        }
        catch (Exception ex) when (ex is IOException or SocketException or ProtocolException { Code: "bad_frame" })
        {
            return null;
        }
    });

    public async Task<RobotMessage> Hello(string task = "cartpole", int obs = 4, int act = 1)
    {
        await Send(("type", "hello"), ("version", 1), ("task", task), ("variant", "standard"), ("obs_dim", obs), ("act_dim", act));
        return (await Receive())!;
    }

    public void Dispose() => tcp.Dispose();
}

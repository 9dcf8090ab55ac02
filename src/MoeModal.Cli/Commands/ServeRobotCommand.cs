using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using MoeModal.Abstractions;
using MoeModal.Plugins.Robotics;

namespace MoeModal.Cli.Commands;

/// <summary>moemodal serve-robot: the robot policy over TCP (docs/robot-protocol.md) until Ctrl+C or SIGTERM.</summary>
public static class ServeRobotCommand
{
    public const string DefaultPackage = "robot-multitask";

    private static readonly string Help = $"""
        usage: moemodal serve-robot [options] --listen HOST:PORT

        Serves a multi-task robot policy to many robots at once over TCP: length-prefixed MessagePack
        frames, one observation in flight per robot (docs/robot-protocol.md). Port 0 picks a free port.
        Prints {"{"}"listening": "HOST:PORT", …{"}"} on stdout once ready, and the final counters when stopped
        (Ctrl+C or SIGTERM). Connection events and errors go to stderr.

        {string.Format(ModelOptions.Help.Replace("(default: all cores)", "(default 1 per request: robots run in parallel)"), DefaultPackage)}
          --listen HOST:PORT       address to listen on (required), e.g. 127.0.0.1:5555 or 0.0.0.0:5555
          --deadline-ms X          per-step deadline; a later answer is replaced by the safe action (default 5)
          --max-frame N            largest accepted frame in bytes (default {Plugins.Robotics.Protocol.Frames.DefaultMaxFrame})
          --max-robots N           connections served at once (default 256)
          --idle-timeout-s X       close connections silent this long (default 60)
          --frame-timeout-s X      close connections that stall inside a frame this long (default 5)
          --stats-every-s X        print counters on stderr every X seconds (default: never)
          --quiet                  no per-connection lines on stderr
        """;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (CliApp.WantsHelp(args, Help, stdout)) return CliApp.Ok;
        var a = Args.Parse(args, [.. ModelOptions.Values, "--listen", "--deadline-ms", "--max-frame", "--max-robots",
            "--idle-timeout-s", "--frame-timeout-s", "--stats-every-s"], ["--quiet"]);
        if (a.Positionals.Count > 0) throw new UsageException($"serve-robot takes no positional arguments (got '{a.Positionals[0]}')");
        var endpoint = ParseEndpoint(a.Value("--listen") ?? throw new UsageException("serve-robot needs --listen HOST:PORT"));
        var options = new RobotServerOptions
        {
            Deadline = TimeSpan.FromMilliseconds(Positive(a, "--deadline-ms") ?? 5),
            MaxFrameBytes = a.Int("--max-frame", 64, 16 << 20) ?? Plugins.Robotics.Protocol.Frames.DefaultMaxFrame,
            MaxConnections = a.Int("--max-robots", 1, 100_000) ?? 256,
            IdleTimeout = TimeSpan.FromSeconds(Positive(a, "--idle-timeout-s") ?? 60),
            FrameTimeout = TimeSpan.FromSeconds(Positive(a, "--frame-timeout-s") ?? 5),
            Log = a.Flag("--quiet") ? null : line => Console.Error.WriteLine(line),
        };
        double? statsEvery = Positive(a, "--stats-every-s");

        var (model, processor, _) = ModelOptions.Load(a, DefaultPackage, "robot", stderr, defaultThreads: 1);
        using (model)
        {
            var robot = (RobotProcessor)processor;
            Func<IReadOnlyDictionary<string, Tensor>, InferenceOutput> infer = inputs => model.Run(inputs);
            return Serve(robot, infer, options, endpoint, statsEvery, stdout, stderr).GetAwaiter().GetResult();
        }
    }

    private static async Task<int> Serve(RobotProcessor robot, Func<IReadOnlyDictionary<string, Tensor>, InferenceOutput> infer,
        RobotServerOptions options, IPEndPoint endpoint, double? statsEvery, TextWriter stdout, TextWriter stderr)
    {
        using var stop = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; stop.Cancel(); };
        Console.CancelKeyPress += onCancel;
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; stop.Cancel(); });
        await using var server = new RobotServer(robot, infer, options);
        try
        {
            server.Start(endpoint);
        }
        catch (System.Net.Sockets.SocketException ex)
        {
            stderr.WriteLine($"moemodal: error: cannot listen on {endpoint}: {ex.Message}");
            Console.CancelKeyPress -= onCancel;
            return CliApp.Fatal;
        }
        var listening = new JsonObject
        {
            ["listening"] = server.LocalEndPoint!.ToString(),
            ["tasks"] = new JsonArray([.. robot.Catalog.All.Select(t => (JsonNode)$"{t.Task}/{t.Variant}")]),
            ["deadline_ms"] = options.Deadline.TotalMilliseconds,
        };
        stdout.WriteLine(CliApp.Line(listening));
        stdout.Flush();
        var reporter = statsEvery is { } every ? Report(server, TimeSpan.FromSeconds(every), stderr, stop.Token) : Task.CompletedTask;
        await server.RunAsync(stop.Token).ConfigureAwait(false);
        await reporter.ConfigureAwait(false);
        Console.CancelKeyPress -= onCancel;
        stdout.WriteLine(CliApp.Line(Counters(server.Stats)));
        return CliApp.Ok;
    }

    private static async Task Report(RobotServer server, TimeSpan every, TextWriter stderr, CancellationToken ct)
    {
        try
        {
            while (true)
            {
                await Task.Delay(every, ct).ConfigureAwait(false);
                stderr.WriteLine($"serve-robot: {CliApp.Line(Counters(server.Stats))}");
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static JsonObject Counters(RobotServerStats s) => new()
    {
        ["sessions"] = s.Sessions,
        ["active"] = s.Active,
        ["steps"] = s.Steps,
        ["deadline_misses"] = s.DeadlineMisses,
        ["errors"] = s.Errors,
        ["refused"] = s.Refused,
    };

    private static double? Positive(Args a, string name)
    {
        var v = a.Double(name);
        if (v is <= 0) throw new UsageException($"{name} must be > 0, got '{a.Value(name)}'");
        return v;
    }

    internal static IPEndPoint ParseEndpoint(string text)
    {
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port > 65535)
            throw new UsageException($"--listen '{text}' is not HOST:PORT (port 0–65535)");
        string host = text[..colon].Trim('[', ']');
        if (host is "localhost") return new IPEndPoint(IPAddress.Loopback, port);
        if (host is "*" or "+") return new IPEndPoint(IPAddress.Any, port);
        if (!IPAddress.TryParse(host, out var ip))
            throw new UsageException($"--listen '{text}': '{host}' is not an IP address (use 127.0.0.1, 0.0.0.0, ::1 or localhost)");
        return new IPEndPoint(ip, port);
    }
}

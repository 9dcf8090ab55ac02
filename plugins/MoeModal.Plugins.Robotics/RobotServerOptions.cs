namespace MoeModal.Plugins.Robotics;

/// <summary>Limits and timing for <see cref="RobotServer"/>. Immutable; defaults are safe for untrusted clients.</summary>
public sealed record RobotServerOptions
{
    /// <summary>Largest frame accepted. Stops a client from making the host buffer large payloads.</summary>
    public int MaxFrameBytes { get; init; } = Protocol.Frames.DefaultMaxFrame;

    /// <summary>Per-step deadline; a late inference is answered with the safe action and counted.</summary>
    public TimeSpan Deadline { get; init; } = TimeSpan.FromMilliseconds(5);

    /// <summary>A frame that has started must complete within this (stops slow-loris stalls).</summary>
    public TimeSpan FrameTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Time allowed between frames, and for the hello after connecting (stops idle sockets piling up).</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Connections served at once; more are refused with an error frame (stops connection floods).</summary>
    public int MaxConnections { get; init; } = 256;

    /// <summary>Consecutive recoverable errors after which a client is closed (stops error floods).</summary>
    public int MaxConsecutiveErrors { get; init; } = 32;

    /// <summary>Policy runs per sub-task before listening, so JIT and session start-up are not paid inside a deadline.</summary>
    public int WarmUpRounds { get; init; } = 30;

    /// <summary>Receives one line per notable event (connections, fatal errors).</summary>
    public Action<string>? Log { get; init; }
}
